#!/usr/bin/env python3
"""Independent reader for the integration tests: the Python `deltalake` package (delta-rs's Python
binding, with its own log replay and Parquet reader via pyarrow), not the Rust code under test.

    delta_reader.py mkbucket NAME                 create an S3 bucket on the endpoint in AWS_ENDPOINT_URL
    delta_reader.py read URI [APP_ID ...]         print the table as JSON: version, protocol, partition
                                                  columns, schema, rows, the txn version of each APP_ID,
                                                  live and stored data files
"""
import json
import os
import sys


def storage_options():
    if "AWS_ENDPOINT_URL" not in os.environ:
        return {}
    return {
        "AWS_ENDPOINT_URL": os.environ["AWS_ENDPOINT_URL"],
        "AWS_REGION": os.environ.get("AWS_REGION", "us-east-1"),
        "AWS_ACCESS_KEY_ID": os.environ.get("AWS_ACCESS_KEY_ID", "test"),
        "AWS_SECRET_ACCESS_KEY": os.environ.get("AWS_SECRET_ACCESS_KEY", "test"),
        "AWS_ALLOW_HTTP": "true",
    }


def mkbucket(name):
    import boto3

    s3 = boto3.client("s3", endpoint_url=os.environ["AWS_ENDPOINT_URL"], region_name="us-east-1",
                      aws_access_key_id="test", aws_secret_access_key="test")
    s3.create_bucket(Bucket=name)


def plain(v):
    if hasattr(v, "isoformat"):
        return v.isoformat()
    if isinstance(v, bytes):
        return v.decode("utf-8", "replace")
    if isinstance(v, list):
        return [plain(x) for x in v]
    return v


def listing(uri, opts, sub, recursive):
    """File infos under the table's folder `sub` ("" for the root), listed with pyarrow's own filesystem."""
    from pyarrow import fs

    if uri.startswith("s3"):
        s3 = fs.S3FileSystem(endpoint_override=opts["AWS_ENDPOINT_URL"], region=opts["AWS_REGION"],
                             access_key=opts["AWS_ACCESS_KEY_ID"], secret_key=opts["AWS_SECRET_ACCESS_KEY"], scheme="http")
        path, filesystem = uri.split("://", 1)[1] + sub, s3
    else:
        path, filesystem = uri + sub, fs.LocalFileSystem()
    return filesystem.get_file_info(fs.FileSelector(path, recursive=recursive))


def checkpoints(uri, opts):
    """Names of the checkpoint files in the table's _delta_log."""
    return sorted(i.base_name for i in listing(uri, opts, "/_delta_log", False) if ".checkpoint." in i.base_name)


def stored_files(uri, opts):
    """Data files in storage, live or not: what a vacuum has not deleted yet."""
    return sum(1 for i in listing(uri, opts, "", True) if i.base_name.endswith(".parquet") and "/_delta_log/" not in i.path)


def read(uri, app_ids):
    from deltalake import DeltaTable

    opts = storage_options() if uri.startswith("s3") else {}
    dt = DeltaTable(uri, storage_options=opts)
    table = dt.to_pyarrow_table()
    rows = [{k: plain(v) for k, v in r.items()} for r in table.to_pylist()]
    p = dt.protocol()
    out = {
        "version": dt.version(),
        "protocol": {"reader": p.min_reader_version, "writer": p.min_writer_version},
        "partition_columns": dt.metadata().partition_columns,
        "schema": {f.name: str(f.type) for f in table.schema},
        # The schema as the Delta log records it (what Athena and Spark read), in column order.
        "delta_schema": json.loads(dt.schema().to_json())["fields"],
        "rows": rows,
        "txn": {a: dt.transaction_version(a) for a in app_ids},
        "files": len(dt.file_uris()),
        "checkpoints": checkpoints(uri, opts),
        "stored_files": stored_files(uri, opts),
    }
    print(json.dumps(out))


if __name__ == "__main__":
    cmd, *args = sys.argv[1:]
    if cmd == "mkbucket":
        mkbucket(args[0])
    elif cmd == "read":
        read(args[0], args[1:])
    else:
        sys.exit(f"unknown command {cmd}")
    # Once in a while pyarrow's and delta-rs's native thread pools abort the interpreter's shutdown
    # ("terminate called without an active exception") after the answer is printed; the work is done,
    # so leave without running native teardown.
    sys.stdout.flush()
    os._exit(0)
