#!/usr/bin/env python3
"""The reference reader for the integration tests: Apache Spark with Delta Lake (delta-spark), the
engine users query the tables with, reading them on the local disk or on the S3 endpoint (s3a://).

    spark_reader.py JARS_DIR SPEC_JSON

JARS_DIR holds the Delta and hadoop-aws jars (infra/local/stack.sh spark fetches them from Maven
Central). SPEC_JSON names the tables and what to read:

    {"tables": {"tweets": URI, ...}, "versions": {"tweets": [0, 3], ...}}

Prints one JSON object with, per table: the rows (as the Python reader's `read` prints them), the Spark
schema (column name and type), `DESCRIBE DETAIL` (protocol, partition columns, files), `DESCRIBE
HISTORY` (version and operation of every commit), the application transactions (`txn`) Delta's own
snapshot holds, and the row count at each version asked for (time travel).
"""
import glob
import json
import os
import sys
import time

# Spark hands timestamps to Python as naive datetimes in the process's zone: make that UTC.
os.environ["TZ"] = "UTC"
time.tzset()

from pyspark.sql import SparkSession  # noqa: E402


def session(jars_dir):
    jars = ",".join(sorted(glob.glob(os.path.join(jars_dir, "*.jar"))))
    endpoint = os.environ.get("AWS_ENDPOINT_URL", "http://127.0.0.1:5000")
    b = (
        SparkSession.builder.master("local[2]").appName("tweetlake-spark-reader")
        .config("spark.jars", jars)
        .config("spark.driver.memory", "1g")
        .config("spark.ui.enabled", "false")
        .config("spark.ui.showConsoleProgress", "false")
        .config("spark.driver.host", "127.0.0.1")
        .config("spark.driver.bindAddress", "127.0.0.1")
        # Small tables: one task per log replay instead of Delta's default 50.
        .config("spark.databricks.delta.snapshotPartitions", "2")
        .config("spark.sql.shuffle.partitions", "2")
        .config("spark.sql.session.timeZone", "UTC")
        .config("spark.sql.extensions", "io.delta.sql.DeltaSparkSessionExtension")
        .config("spark.sql.catalog.spark_catalog", "org.apache.spark.sql.delta.catalog.DeltaCatalog")
        .config("spark.hadoop.fs.s3a.endpoint", endpoint)
        .config("spark.hadoop.fs.s3a.endpoint.region", os.environ.get("AWS_REGION", "us-east-1"))
        .config("spark.hadoop.fs.s3a.path.style.access", "true")
        .config("spark.hadoop.fs.s3a.connection.ssl.enabled", str(endpoint.startswith("https")).lower())
        .config("spark.hadoop.fs.s3a.aws.credentials.provider",
                "org.apache.hadoop.fs.s3a.SimpleAWSCredentialsProvider")
        .config("spark.hadoop.fs.s3a.access.key", os.environ.get("AWS_ACCESS_KEY_ID", "test"))
        .config("spark.hadoop.fs.s3a.secret.key", os.environ.get("AWS_SECRET_ACCESS_KEY", "test"))
    )
    spark = b.getOrCreate()
    spark.sparkContext.setLogLevel("ERROR")
    return spark


def plain(v):
    if hasattr(v, "tzinfo") and v.tzinfo is None and hasattr(v, "hour"):
        return v.isoformat() + "+00:00"
    if hasattr(v, "isoformat"):
        return v.isoformat()
    if isinstance(v, (bytes, bytearray)):
        return v.decode("utf-8", "replace")
    if isinstance(v, list):
        return [plain(x) for x in v]
    if hasattr(v, "asDict"):
        return {k: plain(x) for k, x in v.asDict().items()}
    return v


def spark_uri(uri):
    return "s3a://" + uri[len("s3://"):] if uri.startswith("s3://") else uri


def transactions(spark, path):
    """The txn actions of the latest snapshot, as Delta's own log replay sees them."""
    log = spark._jvm.org.apache.spark.sql.delta.DeltaLog.forTable(spark._jsparkSession, path)
    txns = log.unsafeVolatileSnapshot().setTransactions()
    return {txns.apply(i).appId(): txns.apply(i).version() for i in range(txns.size())}


def read(spark, uri, versions):
    path = spark_uri(uri)
    df = spark.read.format("delta").load(path)
    detail = spark.sql(f"DESCRIBE DETAIL delta.`{path}`").collect()[0].asDict()
    history = spark.sql(f"DESCRIBE HISTORY delta.`{path}`").select("version", "operation").collect()
    return {
        "schema": [[f.name, f.dataType.simpleString()] for f in df.schema.fields],
        "rows": [plain(r) for r in df.collect()],
        "detail": {
            "min_reader_version": detail["minReaderVersion"],
            "min_writer_version": detail["minWriterVersion"],
            "partition_columns": list(detail["partitionColumns"]),
            "num_files": detail["numFiles"],
        },
        "history": sorted([[h["version"], h["operation"]] for h in history]),
        "txn": transactions(spark, path),
        "counts_at": {
            str(v): spark.read.format("delta").option("versionAsOf", v).load(path).count() for v in versions
        },
    }


def main():
    jars_dir, spec = sys.argv[1], json.loads(sys.argv[2])
    spark = session(jars_dir)
    out = {name: read(spark, uri, spec.get("versions", {}).get(name, []))
           for name, uri in spec["tables"].items()}
    spark.stop()
    print(json.dumps(out, default=str))


if __name__ == "__main__":
    main()
