//! The ASL (Amazon States Language, JSONPath flavour) subset the jobs' state machines use,
//! parsed strictly: an unknown field, an unsupported state type, operator, resource or path is
//! an error naming the state, never ignored (pure, no I/O).
//!
//! Supported: `Task` (resources [`LAMBDA_INVOKE`] and [`SQS_SEND_MESSAGE`]), `Map` (a
//! distributed map whose `ItemReader` is [`S3_GET_OBJECT`] with `InputType` `JSON`,
//! `MaxConcurrency`, `ToleratedFailurePercentage`), `Choice` (`BooleanEquals`, `NumericEquals`,
//! `StringEquals`, `IsPresent`, `And`, `Or`, `Not`), `Pass`, `Succeed`, `Fail`; `Retry` and
//! `Catch`; `InputPath`, `Parameters`, `ResultSelector`, `ResultPath`, `OutputPath`. Paths are
//! `$`/`$$` followed by `.field` and `[index]` steps; no intrinsic functions.

use std::collections::BTreeMap;

use serde::{Deserialize, Deserializer};
use serde_json::Value;

/// `Task` resource: invoke a Lambda function (`Parameters.FunctionName`, `Parameters.Payload`).
pub const LAMBDA_INVOKE: &str = "arn:aws:states:::lambda:invoke";
/// `Task` resource: send `Parameters.MessageBody` to the queue `Parameters.QueueUrl`.
pub const SQS_SEND_MESSAGE: &str = "arn:aws:states:::sqs:sendMessage";
/// `ItemReader` resource: read the items from the S3 object `Parameters.Bucket`/`Key`.
pub const S3_GET_OBJECT: &str = "arn:aws:states:::s3:getObject";

/// Why a definition is not usable.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum AslError {
    #[error("state machine definition: {0}")]
    Definition(String),
    #[error("state {state:?}: {message}")]
    State { state: String, message: String },
    #[error("DefinitionSubstitutions: {0}")]
    Substitution(String),
}

fn state_error(state: &str, message: impl Into<String>) -> AslError {
    AslError::State { state: state.to_owned(), message: message.into() }
}

/// Replaces every `${Name}` in `definition` by its value in `substitutions`, escaped for a JSON
/// string (the placeholders stand inside strings). A placeholder without a value is an error.
pub fn substitute(definition: &str, substitutions: &BTreeMap<String, String>) -> Result<String, AslError> {
    let mut out = String::with_capacity(definition.len());
    let mut rest = definition;
    while let Some(start) = rest.find("${") {
        out.push_str(&rest[..start]);
        let after = &rest[start + 2..];
        let end = after.find('}').ok_or_else(|| AslError::Substitution("unterminated `${`".into()))?;
        let name = &after[..end];
        let value =
            substitutions.get(name).ok_or_else(|| AslError::Substitution(format!("no value for ${{{name}}}")))?;
        let quoted = serde_json::to_string(value).map_err(|e| AslError::Substitution(e.to_string()))?;
        out.push_str(&quoted[1..quoted.len() - 1]);
        rest = &after[end + 1..];
    }
    out.push_str(rest);
    Ok(out)
}

/// The placeholders (`${Name}`) of `definition`, sorted.
pub fn placeholders(definition: &str) -> Vec<String> {
    let mut names: Vec<String> =
        definition.split("${").skip(1).filter_map(|s| s.find('}').map(|end| s[..end].to_owned())).collect();
    names.sort();
    names.dedup();
    names
}

/// A state machine (or a map's item processor): where it starts and its states.
#[derive(Debug, Clone, PartialEq)]
pub struct StateMachine {
    pub start_at: String,
    pub states: BTreeMap<String, State>,
}

impl StateMachine {
    /// Parses and checks a definition (placeholders already substituted).
    pub fn parse(definition: &str) -> Result<Self, AslError> {
        let value: Value = serde_json::from_str(definition).map_err(|e| AslError::Definition(e.to_string()))?;
        Self::from_value(value, "the state machine")
    }

    fn from_value(value: Value, what: &str) -> Result<Self, AslError> {
        let raw: RawMachine =
            serde_json::from_value(value).map_err(|e| AslError::Definition(format!("{what}: {e}")))?;
        if raw.processor_config.is_some() && what == "the state machine" {
            return Err(AslError::Definition("ProcessorConfig belongs to a Map's ItemProcessor".into()));
        }
        let mut states = BTreeMap::new();
        for (name, value) in raw.states {
            let state: State = serde_json::from_value(value).map_err(|e| state_error(&name, e.to_string()))?;
            state.check(&name)?;
            states.insert(name, state);
        }
        let machine = Self { start_at: raw.start_at, states };
        machine.check_transitions(what)?;
        Ok(machine)
    }

    fn check_transitions(&self, what: &str) -> Result<(), AslError> {
        if !self.states.contains_key(&self.start_at) {
            return Err(AslError::Definition(format!("{what}: StartAt {:?} is not a state", self.start_at)));
        }
        for (name, state) in &self.states {
            for next in state.next_states() {
                if !self.states.contains_key(next) {
                    return Err(state_error(name, format!("transition to {next:?}, which is not a state of {what}")));
                }
            }
        }
        Ok(())
    }

    /// Every state, with the states of map item processors, depth first, as (name, state).
    pub fn all_states(&self) -> Vec<(&str, &State)> {
        let mut out = Vec::new();
        for (name, state) in &self.states {
            out.push((name.as_str(), state));
            if let State::Map(map) = state {
                out.extend(map.item_processor.machine.all_states());
            }
        }
        out
    }
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields, rename_all = "PascalCase")]
struct RawMachine {
    #[serde(default)]
    #[allow(dead_code)]
    comment: Option<String>,
    start_at: String,
    states: serde_json::Map<String, Value>,
    /// Only in a map's item processor (checked there).
    #[serde(default)]
    processor_config: Option<ProcessorConfig>,
}

/// One state.
#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(tag = "Type")]
pub enum State {
    Task(TaskState),
    Map(Box<MapState>),
    Choice(ChoiceState),
    Pass(PassState),
    Succeed(SucceedState),
    Fail(FailState),
}

impl State {
    fn check(&self, name: &str) -> Result<(), AslError> {
        match self {
            State::Task(t) => {
                check_flow(name, t.next.as_ref(), t.end)?;
                if t.resource != LAMBDA_INVOKE && t.resource != SQS_SEND_MESSAGE {
                    return Err(state_error(
                        name,
                        format!(
                            "unsupported Resource {:?} (supported: {LAMBDA_INVOKE}, {SQS_SEND_MESSAGE})",
                            t.resource
                        ),
                    ));
                }
                let Some(Template::Object(fields)) = &t.parameters else {
                    return Err(state_error(name, "a Task needs Parameters (an object)"));
                };
                let required: &[&str] = if t.resource == LAMBDA_INVOKE {
                    &["FunctionName", "Payload"]
                } else {
                    &["QueueUrl", "MessageBody"]
                };
                for key in fields.iter().map(|(k, _)| k.as_str()) {
                    if !required.contains(&key) {
                        return Err(state_error(name, format!("unsupported parameter {key:?} of {}", t.resource)));
                    }
                }
                for key in required {
                    if !fields.iter().any(|(k, _)| k == key) {
                        return Err(state_error(name, format!("{} needs parameter {key}", t.resource)));
                    }
                }
                check_handlers(name, &t.retry, &t.catch)
            }
            State::Map(m) => {
                check_flow(name, m.next.as_ref(), m.end)?;
                if m.item_reader.resource != S3_GET_OBJECT {
                    return Err(state_error(
                        name,
                        format!("unsupported ItemReader Resource {:?}", m.item_reader.resource),
                    ));
                }
                if m.item_reader.reader_config.input_type != "JSON" {
                    return Err(state_error(name, "ItemReader InputType must be JSON"));
                }
                let Template::Object(fields) = &m.item_reader.parameters else {
                    return Err(state_error(name, "ItemReader Parameters must be an object"));
                };
                let mut keys: Vec<&str> = fields.iter().map(|(k, _)| k.as_str()).collect();
                keys.sort_unstable();
                if keys != ["Bucket", "Key"] {
                    return Err(state_error(name, "ItemReader Parameters must be exactly Bucket and Key"));
                }
                let config = &m.item_processor.processor_config;
                if config.mode != "DISTRIBUTED" || !matches!(config.execution_type.as_str(), "STANDARD" | "EXPRESS") {
                    return Err(state_error(
                        name,
                        "ProcessorConfig must be Mode DISTRIBUTED, ExecutionType STANDARD or EXPRESS",
                    ));
                }
                if m.tolerated_failure_percentage.is_some_and(|p| !(0.0..=100.0).contains(&p)) {
                    return Err(state_error(name, "ToleratedFailurePercentage must be 0 to 100"));
                }
                check_handlers(name, &[], &m.catch)
            }
            State::Choice(c) => {
                if c.choices.is_empty() {
                    return Err(state_error(name, "Choices must not be empty"));
                }
                Ok(())
            }
            State::Pass(p) => check_flow(name, p.next.as_ref(), p.end),
            State::Succeed(_) | State::Fail(_) => Ok(()),
        }
    }

    /// The states this one can go to.
    pub fn next_states(&self) -> Vec<&str> {
        let mut next = Vec::new();
        match self {
            State::Task(t) => {
                next.extend(t.next.as_deref());
                next.extend(t.catch.iter().map(|c| c.next.as_str()));
            }
            State::Map(m) => {
                next.extend(m.next.as_deref());
                next.extend(m.catch.iter().map(|c| c.next.as_str()));
            }
            State::Choice(c) => {
                next.extend(c.choices.iter().map(|r| r.next.as_str()));
                next.extend(c.default.as_deref());
            }
            State::Pass(p) => next.extend(p.next.as_deref()),
            State::Succeed(_) | State::Fail(_) => {}
        }
        next
    }
}

fn check_handlers(name: &str, retry: &[Retrier], catch: &[Catcher]) -> Result<(), AslError> {
    let lists = retry.iter().map(|r| &r.error_equals).chain(catch.iter().map(|c| &c.error_equals));
    for (i, errors) in lists.enumerate() {
        if errors.is_empty() {
            return Err(state_error(name, "ErrorEquals must not be empty"));
        }
        if errors.iter().any(|e| e == ALL) && errors.len() > 1 {
            return Err(state_error(name, "States.ALL must be alone in its ErrorEquals"));
        }
        let last_of_kind = if i < retry.len() { i + 1 == retry.len() } else { i + 1 == retry.len() + catch.len() };
        if errors.iter().any(|e| e == ALL) && !last_of_kind {
            return Err(state_error(name, "States.ALL must be in the last Retry or Catch"));
        }
    }
    if let Some(r) = retry.iter().find(|r| r.backoff_rate < 1.0 || r.interval_seconds == 0) {
        return Err(state_error(
            name,
            format!("Retry {:?}: BackoffRate must be >= 1, IntervalSeconds >= 1", r.error_equals),
        ));
    }
    Ok(())
}

/// `States.ALL`: matches every error but `States.Runtime`.
pub const ALL: &str = "States.ALL";
/// `States.TaskFailed`: matches every error of a Task but `States.Timeout` and `States.Runtime`.
pub const TASK_FAILED: &str = "States.TaskFailed";
/// An error that no Retry or Catch handles: it fails the execution.
pub const RUNTIME: &str = "States.Runtime";

/// Checks the `Next`/`End` of a state that continues: exactly one, `End` only `true`.
fn check_flow(name: &str, next: Option<&String>, end: Option<bool>) -> Result<(), AslError> {
    match (next, end) {
        (Some(_), None) | (None, Some(true)) => Ok(()),
        _ => Err(state_error(name, "exactly one of Next and End (true) is required")),
    }
}

/// `InputPath`/`OutputPath` (absent: `$`; `null`: `{}`) and `ResultPath` (absent: `$`; `null`:
/// the result is discarded and the input passed on).
#[derive(Debug, Clone, PartialEq, Default)]
pub enum PathField {
    #[default]
    Default,
    Null,
    Path(ReferencePath),
}

impl<'de> Deserialize<'de> for PathField {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        Ok(match Option::<String>::deserialize(d)? {
            None => PathField::Null,
            Some(s) => PathField::Path(s.parse().map_err(serde::de::Error::custom)?),
        })
    }
}

/// A `Task` state.
#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "PascalCase")]
pub struct TaskState {
    #[serde(default)]
    pub comment: Option<String>,
    pub resource: String,
    #[serde(default)]
    pub input_path: PathField,
    #[serde(default)]
    pub parameters: Option<Template>,
    #[serde(default)]
    pub result_selector: Option<Template>,
    #[serde(default)]
    pub result_path: PathField,
    #[serde(default)]
    pub output_path: PathField,
    #[serde(default)]
    pub retry: Vec<Retrier>,
    #[serde(default)]
    pub catch: Vec<Catcher>,
    #[serde(default)]
    pub next: Option<String>,
    #[serde(default)]
    pub end: Option<bool>,
}

/// A distributed `Map` state.
#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "PascalCase")]
pub struct MapState {
    #[serde(default)]
    pub comment: Option<String>,
    #[serde(default)]
    pub input_path: PathField,
    pub item_reader: ItemReader,
    pub item_processor: ItemProcessor,
    /// Items processed at once; 0 or absent: no limit.
    #[serde(default)]
    pub max_concurrency: Option<u32>,
    /// The map fails once more than this share of its items failed; absent: 0.
    #[serde(default)]
    pub tolerated_failure_percentage: Option<f64>,
    #[serde(default)]
    pub result_selector: Option<Template>,
    #[serde(default)]
    pub result_path: PathField,
    #[serde(default)]
    pub output_path: PathField,
    #[serde(default)]
    pub catch: Vec<Catcher>,
    #[serde(default)]
    pub next: Option<String>,
    #[serde(default)]
    pub end: Option<bool>,
}

/// Where a map's items come from.
#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "PascalCase")]
pub struct ItemReader {
    pub resource: String,
    pub reader_config: ReaderConfig,
    pub parameters: Template,
}

#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "PascalCase")]
pub struct ReaderConfig {
    pub input_type: String,
}

/// A map's item processor: a state machine run once per item.
#[derive(Debug, Clone, PartialEq)]
pub struct ItemProcessor {
    pub processor_config: ProcessorConfig,
    pub machine: StateMachine,
}

impl<'de> Deserialize<'de> for ItemProcessor {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let value = Value::deserialize(d)?;
        let config = value
            .get("ProcessorConfig")
            .cloned()
            .ok_or_else(|| serde::de::Error::custom("ItemProcessor needs ProcessorConfig"))?;
        let processor_config: ProcessorConfig = serde_json::from_value(config).map_err(serde::de::Error::custom)?;
        let machine = StateMachine::from_value(value, "the item processor").map_err(serde::de::Error::custom)?;
        Ok(Self { processor_config, machine })
    }
}

#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "PascalCase")]
pub struct ProcessorConfig {
    pub mode: String,
    pub execution_type: String,
}

/// A `Choice` state.
#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "PascalCase")]
pub struct ChoiceState {
    #[serde(default)]
    pub comment: Option<String>,
    #[serde(default)]
    pub input_path: PathField,
    #[serde(default)]
    pub output_path: PathField,
    pub choices: Vec<ChoiceRule>,
    #[serde(default)]
    pub default: Option<String>,
}

/// A top-level choice rule: a condition and where it leads.
#[derive(Debug, Clone, PartialEq)]
pub struct ChoiceRule {
    pub condition: Condition,
    pub next: String,
}

impl<'de> Deserialize<'de> for ChoiceRule {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let raw = RawRule::deserialize(d)?;
        let next = raw.next.clone().ok_or_else(|| serde::de::Error::custom("a choice rule needs Next"))?;
        Ok(Self { condition: raw.into_condition().map_err(serde::de::Error::custom)?, next })
    }
}

/// A choice condition.
#[derive(Debug, Clone, PartialEq)]
pub enum Condition {
    BooleanEquals(ReferencePath, bool),
    NumericEquals(ReferencePath, f64),
    StringEquals(ReferencePath, String),
    IsPresent(ReferencePath, bool),
    And(Vec<Condition>),
    Or(Vec<Condition>),
    Not(Box<Condition>),
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields, rename_all = "PascalCase")]
struct RawRule {
    #[serde(default)]
    variable: Option<ReferencePath>,
    #[serde(default)]
    boolean_equals: Option<bool>,
    #[serde(default)]
    numeric_equals: Option<f64>,
    #[serde(default)]
    string_equals: Option<String>,
    #[serde(default)]
    is_present: Option<bool>,
    #[serde(default)]
    and: Option<Vec<RawRule>>,
    #[serde(default)]
    or: Option<Vec<RawRule>>,
    #[serde(default)]
    not: Option<Box<RawRule>>,
    #[serde(default)]
    next: Option<String>,
    #[serde(default)]
    #[allow(dead_code)]
    comment: Option<String>,
}

impl RawRule {
    fn into_condition(self) -> Result<Condition, String> {
        let nested = |rules: Vec<RawRule>| -> Result<Vec<Condition>, String> {
            rules
                .into_iter()
                .map(
                    |r| if r.next.is_some() { Err("a nested rule has no Next".to_owned()) } else { r.into_condition() },
                )
                .collect()
        };
        let mut conditions = Vec::new();
        let variable = self.variable;
        let needs_variable =
            |v: &Option<ReferencePath>| v.clone().ok_or_else(|| "a comparison needs Variable".to_owned());
        if let Some(b) = self.boolean_equals {
            conditions.push(Condition::BooleanEquals(needs_variable(&variable)?, b));
        }
        if let Some(n) = self.numeric_equals {
            conditions.push(Condition::NumericEquals(needs_variable(&variable)?, n));
        }
        if let Some(s) = self.string_equals {
            conditions.push(Condition::StringEquals(needs_variable(&variable)?, s));
        }
        if let Some(p) = self.is_present {
            conditions.push(Condition::IsPresent(needs_variable(&variable)?, p));
        }
        let comparison = !conditions.is_empty();
        if let Some(rules) = self.and {
            conditions.push(Condition::And(nested(rules)?));
        }
        if let Some(rules) = self.or {
            conditions.push(Condition::Or(nested(rules)?));
        }
        if let Some(rule) = self.not {
            if rule.next.is_some() {
                return Err("a nested rule has no Next".to_owned());
            }
            conditions.push(Condition::Not(Box::new(rule.into_condition()?)));
        }
        if !comparison && variable.is_some() {
            return Err(
                "Variable without a supported comparison (BooleanEquals, NumericEquals, StringEquals, IsPresent)"
                    .into(),
            );
        }
        match conditions.len() {
            1 => Ok(conditions.remove(0)),
            0 => Err("a choice rule needs one comparison or And/Or/Not".into()),
            _ => Err("a choice rule has exactly one comparison or And/Or/Not".into()),
        }
    }
}

/// A `Pass` state.
#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "PascalCase")]
pub struct PassState {
    #[serde(default)]
    pub comment: Option<String>,
    #[serde(default)]
    pub input_path: PathField,
    #[serde(default)]
    pub parameters: Option<Template>,
    #[serde(default)]
    pub result: Option<Value>,
    #[serde(default)]
    pub result_path: PathField,
    #[serde(default)]
    pub output_path: PathField,
    #[serde(default)]
    pub next: Option<String>,
    #[serde(default)]
    pub end: Option<bool>,
}

/// A `Succeed` state.
#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "PascalCase")]
pub struct SucceedState {
    #[serde(default)]
    pub comment: Option<String>,
    #[serde(default)]
    pub input_path: PathField,
    #[serde(default)]
    pub output_path: PathField,
}

/// A `Fail` state.
#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "PascalCase")]
pub struct FailState {
    #[serde(default)]
    pub comment: Option<String>,
    pub error: String,
    pub cause: String,
}

/// Jitter of a retrier's delays.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Deserialize)]
#[serde(rename_all = "UPPERCASE")]
pub enum Jitter {
    #[default]
    None,
    /// A delay drawn uniformly from 0 to the computed delay.
    Full,
}

/// One `Retry` entry.
#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "PascalCase")]
pub struct Retrier {
    pub error_equals: Vec<String>,
    #[serde(default = "one")]
    pub interval_seconds: u32,
    #[serde(default = "three")]
    pub max_attempts: u32,
    #[serde(default = "two")]
    pub backoff_rate: f64,
    #[serde(default)]
    pub max_delay_seconds: Option<u32>,
    #[serde(default)]
    pub jitter_strategy: Jitter,
    #[serde(default)]
    #[allow(dead_code)]
    pub comment: Option<String>,
}

fn one() -> u32 {
    1
}
fn three() -> u32 {
    3
}
fn two() -> f64 {
    2.0
}

impl Retrier {
    /// The delay before retry number `attempt` (0-based), before jitter.
    pub fn delay(&self, attempt: u32) -> std::time::Duration {
        let exponent = i32::try_from(attempt).unwrap_or(i32::MAX);
        let secs = f64::from(self.interval_seconds) * self.backoff_rate.powi(exponent);
        let capped = match self.max_delay_seconds {
            Some(max) => secs.min(f64::from(max)),
            None => secs.min(31_622_400.0),
        };
        std::time::Duration::from_secs_f64(capped)
    }
}

/// One `Catch` entry.
#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "PascalCase")]
pub struct Catcher {
    pub error_equals: Vec<String>,
    pub next: String,
    /// Where the error output (`{"Error", "Cause"}`) goes in the state's input; absent: `$`.
    #[serde(default)]
    pub result_path: PathField,
    #[serde(default)]
    #[allow(dead_code)]
    pub comment: Option<String>,
}

/// Whether an `ErrorEquals` entry matches error `name` (in a Task or Map state).
pub fn error_matches(pattern: &str, name: &str) -> bool {
    if name == RUNTIME {
        return false;
    }
    pattern == name || pattern == ALL || (pattern == TASK_FAILED && name != "States.Timeout")
}

/// A reference path: `$` (the input) or `$$` (the context object) and `.field`/`[index]` steps.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ReferencePath {
    pub context: bool,
    pub steps: Vec<Step>,
    text: String,
}

/// One step of a [`ReferencePath`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Step {
    Field(String),
    Index(usize),
}

impl std::fmt::Display for ReferencePath {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.text)
    }
}

impl std::str::FromStr for ReferencePath {
    type Err = String;
    fn from_str(text: &str) -> Result<Self, String> {
        let bad = |why: &str| format!("path {text:?}: {why} (supported: $ or $$ then .field and [index] steps)");
        let (context, mut rest) = if let Some(r) = text.strip_prefix("$$") {
            (true, r)
        } else if let Some(r) = text.strip_prefix('$') {
            (false, r)
        } else {
            return Err(bad("must start with $"));
        };
        let mut steps = Vec::new();
        while !rest.is_empty() {
            if let Some(r) = rest.strip_prefix('.') {
                let end = r.find(['.', '[']).unwrap_or(r.len());
                let field = &r[..end];
                if field.is_empty() || !field.chars().all(|c| c.is_ascii_alphanumeric() || c == '_' || c == '-') {
                    return Err(bad("a field name is [A-Za-z0-9_-]+"));
                }
                steps.push(Step::Field(field.to_owned()));
                rest = &r[end..];
            } else if let Some(r) = rest.strip_prefix('[') {
                let end = r.find(']').ok_or_else(|| bad("unclosed ["))?;
                let index = r[..end].parse().map_err(|_| bad("an index is a non-negative integer"))?;
                steps.push(Step::Index(index));
                rest = &r[end + 1..];
            } else {
                return Err(bad("unexpected character"));
            }
        }
        Ok(Self { context, steps, text: text.to_owned() })
    }
}

impl<'de> Deserialize<'de> for ReferencePath {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        String::deserialize(d)?.parse().map_err(serde::de::Error::custom)
    }
}

impl ReferencePath {
    /// The value at this path in `input` (or `context` for `$$`), if present.
    pub fn get<'v>(&self, input: &'v Value, context: &'v Value) -> Option<&'v Value> {
        let mut at = if self.context { context } else { input };
        for step in &self.steps {
            at = match step {
                Step::Field(f) => at.as_object()?.get(f)?,
                Step::Index(i) => at.as_array()?.get(*i)?,
            };
        }
        Some(at)
    }

    /// `target` with `value` placed at this path (a `ResultPath`): `$` replaces it, fields are
    /// created as needed. Fails on `$$`, an index step, or a step through a non-object.
    pub fn set(&self, target: Value, value: Value) -> Result<Value, String> {
        if self.context {
            return Err(format!("ResultPath {self} cannot write the context object"));
        }
        fn place(target: Value, steps: &[Step], value: Value, path: &ReferencePath) -> Result<Value, String> {
            let Some((first, rest)) = steps.split_first() else { return Ok(value) };
            let Step::Field(field) = first else {
                return Err(format!("ResultPath {path} cannot write an array index"));
            };
            let mut object = match target {
                Value::Object(o) => o,
                other => return Err(format!("ResultPath {path}: the input is {other}, not an object")),
            };
            let inner = object.remove(field).unwrap_or_else(|| Value::Object(serde_json::Map::new()));
            let placed = place(inner, rest, value, path)?;
            object.insert(field.clone(), placed);
            Ok(Value::Object(object))
        }
        place(target, &self.steps, value, self)
    }
}

/// A payload template (`Parameters`, `ResultSelector`, an `ItemReader`'s `Parameters`): JSON in
/// which a field whose name ends in `.$` takes the value at its path.
#[derive(Debug, Clone, PartialEq)]
pub enum Template {
    Literal(Value),
    Object(Vec<(String, Template)>),
    Array(Vec<Template>),
    Path(ReferencePath),
}

impl TryFrom<Value> for Template {
    type Error = String;
    fn try_from(value: Value) -> Result<Self, String> {
        match value {
            Value::Object(map) => {
                let mut fields = Vec::with_capacity(map.len());
                for (key, value) in map {
                    if let Some(name) = key.strip_suffix(".$") {
                        let Value::String(path) = value else {
                            return Err(format!("{key}: the value of a .$ field must be a path string"));
                        };
                        if path.starts_with("States.") {
                            return Err(format!("{key}: intrinsic functions are not supported ({path})"));
                        }
                        fields.push((name.to_owned(), Template::Path(path.parse()?)));
                    } else {
                        fields.push((key, Template::try_from(value)?));
                    }
                }
                Ok(Template::Object(fields))
            }
            Value::Array(items) => {
                Ok(Template::Array(items.into_iter().map(Template::try_from).collect::<Result<_, _>>()?))
            }
            literal => Ok(Template::Literal(literal)),
        }
    }
}

impl<'de> Deserialize<'de> for Template {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        Template::try_from(Value::deserialize(d)?).map_err(serde::de::Error::custom)
    }
}

impl Template {
    /// The template filled from `input` and `context`; a path that is not there is an error
    /// naming it (a `States.Runtime` failure).
    pub fn render(&self, input: &Value, context: &Value) -> Result<Value, String> {
        Ok(match self {
            Template::Literal(v) => v.clone(),
            Template::Path(p) => {
                p.get(input, context).cloned().ok_or_else(|| format!("the path {p} is not in the input"))?
            }
            Template::Array(items) => {
                Value::Array(items.iter().map(|t| t.render(input, context)).collect::<Result<_, _>>()?)
            }
            Template::Object(fields) => {
                let mut out = serde_json::Map::new();
                for (key, t) in fields {
                    out.insert(key.clone(), t.render(input, context)?);
                }
                Value::Object(out)
            }
        })
    }

    /// The literal string value of field `key` of an object template.
    pub fn literal_str(&self, key: &str) -> Option<&str> {
        match self {
            Template::Object(fields) => fields.iter().find(|(k, _)| k == key).and_then(|(_, t)| match t {
                Template::Literal(Value::String(s)) => Some(s.as_str()),
                _ => None,
            }),
            _ => None,
        }
    }

    /// Field `key` of an object template.
    pub fn field(&self, key: &str) -> Option<&Template> {
        match self {
            Template::Object(fields) => fields.iter().find(|(k, _)| k == key).map(|(_, t)| t),
            _ => None,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn machine(states: Value) -> Result<StateMachine, AslError> {
        StateMachine::parse(&json!({"StartAt": "A", "States": states}).to_string())
    }

    #[test]
    fn paths() {
        let input = json!({"a": {"b": [1, {"c": true}]}});
        let context = json!({"Execution": {"Name": "x"}});
        let p: ReferencePath = "$.a.b[1].c".parse().unwrap();
        assert_eq!(p.get(&input, &context), Some(&json!(true)));
        let p: ReferencePath = "$$.Execution.Name".parse().unwrap();
        assert_eq!(p.get(&input, &context), Some(&json!("x")));
        assert_eq!("$".parse::<ReferencePath>().unwrap().get(&input, &context), Some(&input));
        assert_eq!("$.missing".parse::<ReferencePath>().unwrap().get(&input, &context), None);
        for bad in ["a.b", "$..a", "$.a[*]", "$.a[?(@.x)]", "$['a']", "$.a b", "$.a[1"] {
            assert!(bad.parse::<ReferencePath>().is_err(), "{bad}");
        }
        let set = |path: &str, target: Value| path.parse::<ReferencePath>().unwrap().set(target, json!(1));
        assert_eq!(set("$", json!({"x": 0})), Ok(json!(1)));
        assert_eq!(set("$.r.s", json!({"x": 0})), Ok(json!({"x": 0, "r": {"s": 1}})));
        assert_eq!(set("$.x", json!({"x": {"y": 2}})), Ok(json!({"x": 1})));
        assert!(set("$.x.y", json!({"x": 3})).is_err());
        assert!(set("$.x", json!([1])).is_err());
        assert!(set("$$.x", json!({})).is_err());
    }

    #[test]
    fn templates_fill_paths_and_reject_intrinsics() {
        let t = Template::try_from(json!({"a": 1, "b.$": "$.x", "n": {"c.$": "$$.Execution.Id"}, "l": [{"d.$": "$"}]}))
            .unwrap();
        let got = t.render(&json!({"x": "y"}), &json!({"Execution": {"Id": "e"}})).unwrap();
        assert_eq!(got, json!({"a": 1, "b": "y", "n": {"c": "e"}, "l": [{"d": {"x": "y"}}]}));
        assert!(t.render(&json!({}), &json!({})).unwrap_err().contains("$.x"));
        assert!(Template::try_from(json!({"a.$": "States.Format('{}', $.x)"})).unwrap_err().contains("intrinsic"));
        assert!(Template::try_from(json!({"a.$": 1})).is_err());
    }

    #[test]
    fn substitutions_are_escaped_and_required() {
        let subs: BTreeMap<String, String> = [("A".to_owned(), "x\"y".to_owned())].into();
        assert_eq!(substitute(r#"{"k": "${A}/z"}"#, &subs).unwrap(), r#"{"k": "x\"y/z"}"#);
        assert!(substitute(r#"{"k": "${B}"}"#, &subs).unwrap_err().to_string().contains("${B}"));
        assert_eq!(placeholders("${B} ${A} ${B}"), ["A", "B"]);
    }

    #[test]
    fn unsupported_things_are_errors_naming_the_state() {
        let cases = [
            (json!({"A": {"Type": "Wait", "Seconds": 1, "End": true}}), "unknown variant `Wait`"),
            (json!({"A": {"Type": "Parallel", "Branches": [], "End": true}}), "unknown variant `Parallel`"),
            (json!({"A": {"Type": "Succeed", "Extra": 1}}), "unknown field `Extra`"),
            (
                json!({"A": {"Type": "Task", "Resource": "arn:aws:states:::dynamodb:putItem", "Parameters": {}, "End": true}}),
                "unsupported Resource",
            ),
            (
                json!({"A": {"Type": "Task", "Resource": LAMBDA_INVOKE, "Parameters": {"FunctionName": "f", "Payload": {}}, "TimeoutSeconds": 5, "End": true}}),
                "unknown field `TimeoutSeconds`",
            ),
            (
                json!({"A": {"Type": "Task", "Resource": LAMBDA_INVOKE, "Parameters": {"FunctionName": "f"}, "End": true}}),
                "needs parameter Payload",
            ),
            (
                json!({"A": {"Type": "Task", "Resource": LAMBDA_INVOKE, "Parameters": {"FunctionName": "f", "Payload": {}}, "Next": "B"}}),
                "not a state",
            ),
            (json!({"A": {"Type": "Pass", "Next": "A", "End": true}}), "exactly one of Next and End"),
            (
                json!({"A": {"Type": "Choice", "Choices": [{"Variable": "$.x", "NumericGreaterThan": 1, "Next": "A"}]}}),
                "unknown field `NumericGreaterThan`",
            ),
            (
                json!({"A": {"Type": "Pass", "Parameters": {"x.$": "States.Array(1)"}, "End": true}}),
                "intrinsic functions",
            ),
            (
                json!({"A": {"Type": "Task", "Resource": LAMBDA_INVOKE, "Parameters": {"FunctionName": "f", "Payload": {}},
                "Catch": [{"ErrorEquals": ["States.ALL"], "Next": "A"}, {"ErrorEquals": ["X"], "Next": "A"}], "End": true}}),
                "last Retry or Catch",
            ),
        ];
        for (states, expected) in cases {
            let err = machine(states.clone()).unwrap_err().to_string();
            assert!(err.contains(expected), "{states}: {err}");
            assert!(err.contains("\"A\""), "names the state: {err}");
        }
        assert!(machine(json!({"B": {"Type": "Succeed"}})).unwrap_err().to_string().contains("StartAt"));
    }

    #[test]
    fn error_names_match_as_asl_says() {
        assert!(error_matches("States.ALL", "Lambda.ServiceException"));
        assert!(!error_matches("States.ALL", RUNTIME));
        assert!(error_matches(TASK_FAILED, "Sluice.Transient"));
        assert!(!error_matches(TASK_FAILED, "States.Timeout"));
        assert!(!error_matches("Sluice.Transient", "Sluice.InvalidInput"));
    }

    #[test]
    fn retry_delays_grow_and_are_capped() {
        let r: Retrier = serde_json::from_value(
            json!({"ErrorEquals": ["X"], "IntervalSeconds": 2, "BackoffRate": 2, "MaxDelaySeconds": 10}),
        )
        .unwrap();
        let secs: Vec<u64> = (0..5).map(|a| r.delay(a).as_secs()).collect();
        assert_eq!(secs, [2, 4, 8, 10, 10]);
        assert_eq!(r.max_attempts, 3);
        assert_eq!(r.jitter_strategy, Jitter::None);
    }
}
