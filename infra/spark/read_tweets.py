"""Read Tweetlake's Delta tables from Spark with delta-spark (pip install pyspark==3.5.* delta-spark==3.2.*).

    spark-submit --packages io.delta:delta-spark_2.12:3.2.0,org.apache.hadoop:hadoop-aws:3.3.4 \
        infra/spark/read_tweets.py s3a://<DataBucketName>/tables

The tables are Delta protocol reader 1 / writer 2, so any Delta reader of the last five years opens them.
On EMR or Glue 4+, the Glue catalog tables (database "tweetlake") work too: spark.table("tweetlake.tweets").
"""
import sys

from delta import configure_spark_with_delta_pip
from pyspark.sql import SparkSession, functions as F

root = sys.argv[1].rstrip("/") if len(sys.argv) > 1 else "s3a://tweetlake-data/tables"
builder = (
    SparkSession.builder.appName("tweetlake-read")
    .config("spark.sql.extensions", "io.delta.sql.DeltaSparkSessionExtension")
    .config("spark.sql.catalog.spark_catalog", "org.apache.spark.sql.delta.catalog.DeltaCatalog")
    .config("spark.hadoop.fs.s3a.aws.credentials.provider",
            "com.amazonaws.auth.DefaultAWSCredentialsProviderChain")
)
spark = configure_spark_with_delta_pip(builder).getOrCreate()

tweets = spark.read.format("delta").load(f"{root}/tweets")
tweets.printSchema()

# Sentiment per rule per hour from the tweets themselves (the aggregates table has it precomputed).
(tweets
 .withColumn("rule", F.explode("rule_tags"))
 .groupBy("rule", F.date_trunc("hour", "created_at").alias("hour"))
 .agg(F.count("*").alias("tweets"), F.avg("sentiment_score").alias("mean_score"))
 .orderBy("hour", "rule")
 .show(50, truncate=False))

# The same from the aggregates table: sum the partials of each window.
aggregates = spark.read.format("delta").load(f"{root}/aggregates")
(aggregates
 .where("dimension = 'rule' AND window_minutes = 60")
 .groupBy(F.col("value").alias("rule"), F.col("window_start").alias("hour"))
 .agg(F.sum("tweets").alias("tweets"), (F.sum("score_sum") / F.sum("tweets")).alias("mean_score"))
 .orderBy("hour", "rule")
 .show(50, truncate=False))
