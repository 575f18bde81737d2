"""Read Tweetlake's Delta tables from Apache Spark with Delta Lake (pip install pyspark==4.0.1 delta-spark==4.0.0):

    spark-submit --packages io.delta:delta-spark_2.13:4.0.0,org.apache.hadoop:hadoop-aws:3.4.1 \
        infra/spark/read_tweets.py s3a://<DataBucketName>/tables

Credentials come from S3A's default chain (environment, profile, instance or task role). The tables are
Delta protocol reader 1 / writer 2, so any Delta reader of the last five years opens them. On EMR or Glue
4+, the Glue catalog tables (database "tweetlake") work too: spark.table("tweetlake.tweets").
tests/spark_read.rs runs this file as it is against tables the pipeline wrote.
"""
import sys

from pyspark.sql import SparkSession, functions as F

root = sys.argv[1].rstrip("/") if len(sys.argv) > 1 else "s3a://tweetlake-data/tables"
spark = (
    SparkSession.builder.appName("tweetlake-read")
    .config("spark.sql.extensions", "io.delta.sql.DeltaSparkSessionExtension")
    .config("spark.sql.catalog.spark_catalog", "org.apache.spark.sql.delta.catalog.DeltaCatalog")
    .config("spark.sql.session.timeZone", "UTC")
    .getOrCreate()
)

tweets = spark.read.format("delta").load(f"{root}/tweets")
tweets.printSchema()

# Sentiment per rule per hour from the tweets themselves (the aggregates table has it precomputed):
# the mean over scored tweets that are not retweets, as the aggregates count it.
(tweets
 .withColumn("rule", F.explode("rule_tags"))
 .groupBy("rule", F.date_trunc("hour", "created_at").alias("hour"))
 .agg(F.count("*").alias("tweets"),
      F.avg(F.when(F.coalesce("kind", F.lit("original")) != "retweet", F.col("sentiment_score"))).alias("mean_score"))
 .orderBy("hour", "rule")
 .show(50, truncate=False))

# The same from the aggregates table: sum the partials of each window.
aggregates = spark.read.format("delta").load(f"{root}/aggregates")
(aggregates
 .where("dimension = 'rule' AND window_minutes = 60")
 .groupBy(F.col("value").alias("rule"), F.col("window_start").alias("hour"))
 .agg(F.sum("tweets").alias("tweets"), (F.sum("score_sum") / F.sum(F.coalesce("scored", "tweets"))).alias("mean_score"))
 .orderBy("hour", "rule")
 .show(50, truncate=False))
