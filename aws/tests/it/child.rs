//! Running one test of this binary in a child process with an exactly known environment: the
//! only way to test environment-driven resolution without mutating this process's environment.

use std::process::Command;

/// Set in the child's environment; child tests do nothing without it.
const CHILD_MARKER: &str = "SLUICE_AWS_IT_CHILD";

/// The environment every child starts from: no profile files, no instance metadata, nothing
/// inherited, so only the variables a test passes can influence aws-config.
const CLEAN_ENV: &[(&str, &str)] = &[
    ("AWS_CONFIG_FILE", "/nonexistent/sluice-aws-it/config"),
    ("AWS_SHARED_CREDENTIALS_FILE", "/nonexistent/sluice-aws-it/credentials"),
    ("AWS_EC2_METADATA_DISABLED", "true"),
];

/// Runs the `#[ignore]`d test `name` (its full path in this binary, e.g. `config::child_x`) in a
/// child process whose environment is [`CLEAN_ENV`] plus `env`, and fails unless exactly that
/// test ran and passed.
pub fn run_in_clean_env(name: &str, env: &[(&str, &str)]) {
    let exe = std::env::current_exe().unwrap();
    let output = Command::new(exe)
        .env_clear()
        .envs(CLEAN_ENV.iter().copied())
        .envs(env.iter().copied())
        .env(CHILD_MARKER, "1")
        .args([name, "--exact", "--ignored", "--test-threads=1", "--nocapture"])
        .output()
        .unwrap();
    let stdout = String::from_utf8_lossy(&output.stdout);
    assert!(
        output.status.success() && stdout.contains("test result: ok. 1 passed"),
        "child test {name} did not pass (status {}):\n--- stdout\n{}\n--- stderr\n{}",
        output.status,
        indent(&stdout),
        indent(&String::from_utf8_lossy(&output.stderr)),
    );
}

/// Indents the child's output, so that its `test result:` lines are not mistaken for this
/// process's own by the test command, which counts them.
fn indent(text: &str) -> String {
    text.lines().map(|line| format!("  | {line}\n")).collect()
}

/// True inside a child started by [`run_in_clean_env`]. Child tests return early otherwise
/// (e.g. under `cargo test -- --ignored`), because their assertions assume the clean environment.
pub fn in_child() -> bool {
    std::env::var_os(CHILD_MARKER).is_some()
}
