"""Runs SQL on chDB, a current ClickHouse engine embedded in Python (PyPI `chdb`), for tests
that need what Debian's ClickHouse 18.16 lacks (Parquet, s3()).

Reads one JSON object from stdin:
  {"s3": {"endpoint": "http://127.0.0.1:5055", "uploads": [{"bucket": b, "key": k, "file": path}]},
   "statements": ["CREATE …", "INSERT …"],
   "query": "SELECT … "}
uploads the files to the S3 endpoint (moto), runs the statements in order in one session
(mutations synchronous), then prints the query's rows as JSON lines. Any failure exits 1
with the statement and the engine's message.
"""

import json
import os
import sys
import tempfile


def main():
    job = json.load(sys.stdin)
    s3 = job.get("s3")
    if s3:
        # The engine signs with the environment's credentials, as a production server uses
        # its own (the SQL never carries them); moto takes any.
        os.environ.setdefault("AWS_ACCESS_KEY_ID", "test")
        os.environ.setdefault("AWS_SECRET_ACCESS_KEY", "test")
        os.environ.setdefault("AWS_REGION", "us-east-1")
        import boto3

        client = boto3.client(
            "s3",
            endpoint_url=s3["endpoint"],
            region_name="us-east-1",
            aws_access_key_id="test",
            aws_secret_access_key="test",
        )
        for upload in s3.get("uploads", []):
            try:
                client.create_bucket(Bucket=upload["bucket"])
            except client.exceptions.BucketAlreadyOwnedByYou:
                pass
            client.upload_file(upload["file"], upload["bucket"], upload["key"])

    from chdb import session

    with tempfile.TemporaryDirectory() as path:
        db = session.Session(path)
        # Mutations (ALTER … DELETE) finish before the next statement, as the ClickHouse
        # executor waits for them.
        db.query("SET mutations_sync = 2")
        print(f"chdb: ClickHouse {db.query('SELECT version()', 'TSV').bytes().decode().strip()}", file=sys.stderr)
        for statement in job.get("statements", []):
            try:
                db.query(statement)
            except Exception as e:  # the engine's message, with the statement
                print(f"chdb: the statement failed:\n{statement}\n{e}", file=sys.stderr)
                sys.exit(1)
        if job.get("query"):
            try:
                rows = db.query(job["query"], "JSONEachRow").bytes().decode()
            except Exception as e:
                print(f"chdb: the query failed:\n{job['query']}\n{e}", file=sys.stderr)
                sys.exit(1)
            sys.stdout.write(rows)
        db.close()


if __name__ == "__main__":
    main()
