//! The Prometheus text exposition format (version 0.0.4) of a [`Metrics`] registry, and a
//! checker of it against the [`catalog`].

use std::collections::BTreeSet;
use std::fmt::Write as _;

use crate::Metrics;
use crate::catalog::{self, Metric};

/// The `Content-Type` of [`Metrics::render_prometheus`]'s output.
pub const CONTENT_TYPE: &str = "text/plain; version=0.0.4; charset=utf-8";

impl Metrics {
    /// Renders every registered series in the Prometheus text exposition format: per entry, in
    /// name order, `# HELP` and `# TYPE` from the catalog, then one sample line per label set.
    pub fn render_prometheus(&self) -> String {
        let families = self.lock();
        let mut out = String::new();
        for family in families.values().filter(|f| !f.series.is_empty()) {
            let Metric { name, kind, help, .. } = family.metric;
            let _ = writeln!(out, "# HELP {name} {}", escape_help(help));
            let _ = writeln!(out, "# TYPE {name} {}", kind.as_str());
            for (values, handle) in &family.series {
                out.push_str(name);
                for (i, (k, v)) in family.labels(values).enumerate() {
                    out.push(if i == 0 { '{' } else { ',' });
                    let _ = write!(out, "{k}=\"{}\"", escape_label_value(v));
                }
                if !values.is_empty() {
                    out.push('}');
                }
                let _ = writeln!(out, " {}", handle.value());
            }
        }
        out
    }
}

fn escape_help(s: &str) -> String {
    s.replace('\\', "\\\\").replace('\n', "\\n")
}

fn escape_label_value(s: &str) -> String {
    s.replace('\\', "\\\\").replace('"', "\\\"").replace('\n', "\\n")
}

/// Why [`check_exposition`] refused a text: the 1-based line and what is wrong with it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ExpositionError {
    /// The 1-based line number.
    pub line: usize,
    /// What is wrong.
    pub message: String,
}

impl std::fmt::Display for ExpositionError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "line {}: {}", self.line, self.message)
    }
}

impl std::error::Error for ExpositionError {}

/// Checks that `text` is a well-formed Prometheus text exposition of catalog metrics, line by
/// line, as a scraper reads it: every line is `# HELP`, `# TYPE` or a sample; each family has one
/// HELP and one TYPE (the catalog's kind), both before its samples and its samples contiguous; a
/// sample's name is a catalog entry, its label names are the entry's, its label values are
/// properly quoted and escaped and its value is a number. Returns the number of samples.
pub fn check_exposition(text: &str) -> Result<usize, ExpositionError> {
    /// The family being read: its name and whether its HELP and TYPE lines were seen.
    struct Current<'a> {
        name: &'a str,
        help: bool,
        ty: bool,
    }
    enum Line<'a> {
        Help(&'a str),
        Type(&'a str),
        Sample(&'a str),
    }
    let mut done: BTreeSet<&str> = BTreeSet::new();
    let mut current: Option<Current<'_>> = None;
    let mut samples = 0;
    for (i, text_line) in text.lines().enumerate() {
        let err = |message: String| ExpositionError { line: i + 1, message };
        let line = if let Some(rest) = text_line.strip_prefix("# HELP ") {
            let (name, _) = rest.split_once(' ').ok_or_else(|| err("HELP without text".into()))?;
            Line::Help(name)
        } else if let Some(rest) = text_line.strip_prefix("# TYPE ") {
            let (name, kind) = rest.split_once(' ').ok_or_else(|| err("TYPE without a type".into()))?;
            let metric = entry(name).ok_or_else(|| err(format!("`{name}` is not in the catalog")))?;
            if kind != metric.kind.as_str() {
                return Err(err(format!("`{name}` is a {}, not a {kind}", metric.kind.as_str())));
            }
            Line::Type(name)
        } else if text_line.is_empty() || text_line.starts_with('#') {
            continue; // a blank line or a comment
        } else {
            samples += 1;
            Line::Sample(check_sample(text_line).map_err(err)?)
        };
        let (Line::Help(name) | Line::Type(name) | Line::Sample(name)) = line;
        match &mut current {
            Some(family) if family.name == name => match line {
                Line::Help(_) if family.help => return Err(err(format!("second HELP of `{name}`"))),
                Line::Type(_) if family.ty => return Err(err(format!("second TYPE of `{name}`"))),
                Line::Help(_) => family.help = true,
                Line::Type(_) => family.ty = true,
                Line::Sample(_) if !(family.help && family.ty) => {
                    return Err(err(format!("sample of `{name}` before its HELP and TYPE")));
                }
                Line::Sample(_) => {}
            },
            _ => {
                if !done.insert(name) {
                    return Err(err(format!("`{name}` appears in two places")));
                }
                if matches!(line, Line::Sample(_)) {
                    return Err(err(format!("sample of `{name}` before its HELP and TYPE")));
                }
                current =
                    Some(Current { name, help: matches!(line, Line::Help(_)), ty: matches!(line, Line::Type(_)) });
            }
        }
    }
    Ok(samples)
}

fn entry(name: &str) -> Option<&'static Metric> {
    catalog::ALL.iter().copied().find(|m| m.name == name)
}

/// Checks one sample line; returns its metric name.
fn check_sample(line: &str) -> Result<&str, String> {
    let name_end = line.find(['{', ' ']).ok_or("a sample without a value")?;
    let name = &line[..name_end];
    if !is_metric_name(name) {
        return Err(format!("bad metric name `{name}`"));
    }
    let metric = entry(name).ok_or_else(|| format!("`{name}` is not in the catalog"))?;
    let mut rest = &line[name_end..];
    let mut labels = Vec::new();
    if let Some(mut r) = rest.strip_prefix('{') {
        loop {
            if let Some(after) = r.strip_prefix('}') {
                r = after;
                break;
            }
            let eq = r.find('=').ok_or("a label without `=`")?;
            labels.push(&r[..eq]);
            r = r[eq + 1..].strip_prefix('"').ok_or("a label value without quotes")?;
            let mut chars = r.char_indices();
            let close = loop {
                match chars.next() {
                    Some((_, '\\')) => match chars.next() {
                        Some((_, '\\' | '"' | 'n')) => {}
                        _ => return Err("a bad escape in a label value".into()),
                    },
                    Some((j, '"')) => break j,
                    Some((_, '\n')) | None => return Err("an unterminated label value".into()),
                    Some(_) => {}
                }
            };
            r = &r[close + 1..];
            r = r.strip_prefix(',').unwrap_or(r);
        }
        rest = r;
    }
    if labels != metric.labels {
        return Err(format!("`{name}` has labels {labels:?}, the catalog says {:?}", metric.labels));
    }
    let mut fields = rest.strip_prefix(' ').ok_or("no space before the value")?.split(' ');
    let value = fields.next().unwrap_or_default();
    let numeric = matches!(value, "+Inf" | "-Inf" | "NaN") || value.parse::<f64>().is_ok();
    if !numeric {
        return Err(format!("bad value `{value}`"));
    }
    match (fields.next(), fields.next()) {
        (None, _) => Ok(name),
        (Some(ts), None) if ts.parse::<i64>().is_ok() => Ok(name),
        _ => Err("trailing text after the value".into()),
    }
}

/// `[a-zA-Z_:][a-zA-Z0-9_:]*`.
fn is_metric_name(name: &str) -> bool {
    let mut bytes = name.bytes();
    bytes.next().is_some_and(|b| b.is_ascii_alphabetic() || b == b'_' || b == b':')
        && bytes.all(|b| b.is_ascii_alphanumeric() || b == b'_' || b == b':')
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::catalog::{ALL, Kind};

    /// A registry with one series of every catalog entry, label values included.
    fn every_entry() -> Metrics {
        let m = Metrics::new();
        for (i, metric) in ALL.iter().copied().enumerate() {
            let values: Vec<String> = metric.labels.iter().map(|l| format!("{l}-\"v\"\\{i}")).collect();
            let values: Vec<&str> = values.iter().map(String::as_str).collect();
            m.series(metric, &values);
        }
        m
    }

    #[test]
    fn every_entry_renders_with_help_and_type_and_parses() {
        let text = every_entry().render_prometheus();
        for metric in ALL {
            let (help, ty) = (
                format!("# HELP {} {}", metric.name, metric.help),
                format!("# TYPE {} {}", metric.name, metric.kind.as_str()),
            );
            assert!(text.lines().any(|l| l == help) && text.lines().any(|l| l == ty), "{}:\n{text}", metric.name);
        }
        assert_eq!(check_exposition(&text), Ok(ALL.len()), "{text}");
    }

    #[test]
    fn names_are_unique_valid_and_counters_end_in_total() {
        let mut seen = BTreeSet::new();
        for metric in ALL {
            assert!(seen.insert(metric.name), "`{}` is defined twice", metric.name);
            assert!(is_metric_name(metric.name) && metric.name.starts_with("sluice_"), "{}", metric.name);
            assert_eq!(metric.kind == Kind::Counter, metric.name.ends_with("_total"), "{}", metric.name);
            assert!(!metric.help.is_empty() && !metric.help.contains('\n'), "{}", metric.name);
            let labels: BTreeSet<_> = metric.labels.iter().collect();
            assert_eq!(labels.len(), metric.labels.len(), "{}", metric.name);
            assert!(metric.labels.iter().all(|l| is_metric_name(l) && !l.contains(':')), "{}", metric.name);
        }
    }

    #[test]
    fn the_failure_destination_is_never_called_dead_letter() {
        for metric in ALL {
            let help = metric.help.to_lowercase();
            if metric.name.contains("failure_destination") || help.contains("failure destination") {
                assert!(!metric.name.contains("dead_letter") && !help.contains("dead"), "{}", metric.name);
            }
        }
    }

    #[test]
    fn label_values_are_escaped() {
        let m = Metrics::new();
        m.counter(&catalog::INGEST_REQUESTS, ["a\"b\\c\nd"]).inc();
        let text = m.render_prometheus();
        assert!(text.contains("sluice_ingest_requests_total{status=\"a\\\"b\\\\c\\nd\"} 1\n"), "{text}");
        assert_eq!(check_exposition(&text), Ok(1));
    }

    #[test]
    fn the_checker_refuses_malformed_text() {
        let help = "# HELP sluice_lake_records_total r\n";
        let ty = "# TYPE sluice_lake_records_total counter\n";
        let ok = format!("{help}{ty}sluice_lake_records_total 3\n");
        assert_eq!(check_exposition(&ok), Ok(1));
        for (bad, why) in [
            ("sluice_lake_records_total 3\n".to_owned(), "sample before HELP/TYPE"),
            (format!("{help}# TYPE sluice_lake_records_total gauge\nsluice_lake_records_total 3\n"), "wrong type"),
            (format!("{help}{ty}sluice_lake_records_total three\n"), "bad value"),
            (format!("{help}{ty}sluice_lake_records_total{{x=\"1\"}} 3\n"), "labels not in the catalog"),
            (format!("{help}{ty}sluice_lake_records_total 3\n{help}"), "HELP after samples"),
            (format!("{help}{ty}{help}sluice_lake_records_total 3\n"), "second HELP"),
            (format!("{help}{ty}sluice_lake_records_total3\n"), "no value"),
            (format!("{help}{ty}sluice_lake_records_total 3 x\n"), "trailing text"),
            ("# HELP nope_total n\n# TYPE nope_total counter\nnope_total 1\n".to_owned(), "not in the catalog"),
            (
                "# HELP sluice_ingest_requests_total r\n# TYPE sluice_ingest_requests_total counter\nsluice_ingest_requests_total{status=\"2\\x\"} 1\n".to_owned(),
                "bad escape",
            ),
            (
                format!("{help}{ty}sluice_lake_records_total 3\n# HELP sluice_lake_rows_written_total r\n# TYPE sluice_lake_rows_written_total counter\nsluice_lake_rows_written_total 1\nsluice_lake_records_total 3\n"),
                "family split in two",
            ),
        ] {
            assert!(check_exposition(&bad).is_err(), "accepted ({why}):\n{bad}");
        }
    }
}
