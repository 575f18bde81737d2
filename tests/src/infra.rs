//! Helpers of the infrastructure tests: the SAM template as YAML, its Glue table definitions, and the
//! offline checkers (`cfn-lint`, `cfn-guard`, `checkov`) that `infra/local/stack.sh` installs.

use crate::repo_root;
use serde_norway::Value;
use std::path::PathBuf;
use std::process::{Command, Output};

/// The deployable template.
pub fn template_path() -> PathBuf {
    repo_root().join("infra/template.yaml")
}

/// The template's text.
pub fn template_text() -> String {
    std::fs::read_to_string(template_path()).expect("infra/template.yaml is readable")
}

/// The template parsed; CloudFormation's short tags (`!Ref`, `!Sub`, …) stay as tagged values.
pub fn template() -> Value {
    serde_norway::from_str(&template_text()).expect("infra/template.yaml is valid YAML")
}

/// The path of a checker the local stack installed, from its environment variable.
pub fn tool(var: &str) -> PathBuf {
    PathBuf::from(crate::stack_var(var))
}

/// Runs a checker and returns its output (whatever its exit status).
pub fn run(var: &str, args: &[&str]) -> Output {
    Command::new(tool(var)).args(args).current_dir(repo_root()).output().unwrap_or_else(|e| panic!("{var} runs: {e}"))
}

/// One Glue table as the template declares it.
#[derive(Debug)]
pub struct GlueTable {
    /// The table name.
    pub name: String,
    /// `(name, type)` of the data columns, in order.
    pub columns: Vec<(String, String)>,
    /// `(name, type)` of the partition keys, in order.
    pub partition_keys: Vec<(String, String)>,
    /// The table's `Parameters` (e.g. `table_type`).
    pub parameters: Value,
    /// The `Location`, as written in the template (a `!Sub` string).
    pub location: String,
}

fn name_types(v: &Value) -> Vec<(String, String)> {
    v.as_sequence()
        .expect("a list of columns")
        .iter()
        .map(|c| (c["Name"].as_str().expect("Name").to_owned(), c["Type"].as_str().expect("Type").to_owned()))
        .collect()
}

/// The string inside a `!Sub "…"` (or a plain string).
pub fn sub_text(v: &Value) -> String {
    match v {
        Value::Tagged(t) if t.tag == "Sub" => t.value.as_str().expect("!Sub of a string").to_owned(),
        Value::String(s) => s.clone(),
        other => panic!("expected !Sub or a string, found {other:?}"),
    }
}

/// The Glue table resource whose `TableInput.Name` is `name`.
pub fn glue_table(template: &Value, name: &str) -> GlueTable {
    let resources = template["Resources"].as_mapping().expect("Resources");
    let input = resources
        .values()
        .filter(|r| r["Type"].as_str() == Some("AWS::Glue::Table"))
        .map(|r| &r["Properties"]["TableInput"])
        .find(|t| t["Name"].as_str() == Some(name))
        .unwrap_or_else(|| panic!("no Glue table named {name} in the template"));
    GlueTable {
        name: name.to_owned(),
        columns: name_types(&input["StorageDescriptor"]["Columns"]),
        partition_keys: name_types(&input["PartitionKeys"]),
        parameters: input["Parameters"].clone(),
        location: sub_text(&input["StorageDescriptor"]["Location"]),
    }
}
