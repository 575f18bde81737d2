//! The reference reader: Apache Spark with Delta Lake (`tests/spark_reader.py`, installed by
//! `infra/local/stack.sh spark`), and the Spark type each column of a table's Arrow schema must read as.

use deltalake::arrow::datatypes::{DataType, Schema};
use serde_json::Value;
use std::path::PathBuf;
use std::process::Command;

/// A command running `script` with the Spark venv's Python (pyspark, delta-spark), in the temporary
/// folder: Spark leaves a `spark-warehouse/` folder wherever it runs.
pub fn python(script: &str) -> Command {
    let mut c = Command::new(crate::stack_var("TWEETLAKE_SPARK_PYTHON"));
    c.arg(crate::repo_root().join(script)).current_dir(std::env::temp_dir());
    c
}

/// The folder of the Delta and hadoop-aws jars.
pub fn jars() -> PathBuf {
    PathBuf::from(crate::stack_var("TWEETLAKE_SPARK_JARS"))
}

/// Runs `spark_reader.py` on `spec` (`{"tables": {name: uri}, "versions": {name: [v, ...]}}`) and
/// returns what Spark read, per table name.
pub fn read(spec: &Value) -> Value {
    let out = python("tests/spark_reader.py").arg(jars()).arg(spec.to_string()).output().expect("the Spark venv's python runs");
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "spark_reader.py failed: {}", &stderr[stderr.len().saturating_sub(4000)..]);
    serde_json::from_slice(&out.stdout).expect("spark_reader.py prints JSON")
}

/// Spark's name (`simpleString`) for an Arrow type as Delta maps it.
pub fn spark_type(t: &DataType) -> String {
    match t {
        DataType::Utf8 | DataType::LargeUtf8 => "string".into(),
        DataType::Binary | DataType::LargeBinary => "binary".into(),
        DataType::Boolean => "boolean".into(),
        DataType::Int8 => "tinyint".into(),
        DataType::Int16 => "smallint".into(),
        DataType::Int32 => "int".into(),
        DataType::Int64 => "bigint".into(),
        DataType::Float32 => "float".into(),
        DataType::Float64 => "double".into(),
        DataType::Date32 => "date".into(),
        DataType::Timestamp(_, Some(_)) => "timestamp".into(),
        DataType::Timestamp(_, None) => "timestamp_ntz".into(),
        DataType::List(f) | DataType::LargeList(f) => format!("array<{}>", spark_type(f.data_type())),
        DataType::Struct(fs) => {
            let fields: Vec<String> = fs.iter().map(|f| format!("{}:{}", f.name(), spark_type(f.data_type()))).collect();
            format!("struct<{}>", fields.join(","))
        }
        other => panic!("no Spark mapping for {other:?}"),
    }
}

/// `[[column, spark type], ...]` of an Arrow schema, in order: what Spark's schema must equal.
pub fn contract(schema: &Schema) -> Value {
    schema.fields().iter().map(|f| serde_json::json!([f.name(), spark_type(f.data_type())])).collect()
}
