//! Running real command-line clients (the aws CLI, rclone, s3cmd, python scripts) against a
//! cluster, configured from the environment and flags only, never from files in $HOME.

use super::{Cluster, run_with_timeout};
use std::path::Path;
use std::process::Command;
use std::time::Duration;

/// How long one client command may take.
pub const CLI_TIMEOUT: Duration = Duration::from_secs(600);

/// Whether `program` is on PATH.
pub fn on_path(program: &str) -> bool {
    std::env::var_os("PATH").is_some_and(|paths| {
        std::env::split_paths(&paths).any(|dir| {
            let candidate = dir.join(program);
            candidate.is_file()
                && std::fs::metadata(&candidate)
                    .map(|m| std::os::unix::fs::PermissionsExt::mode(&m.permissions()) & 0o111 != 0)
                    .unwrap_or(false)
        })
    })
}

/// Drops every inherited AWS_* variable (profiles, CA bundles, tokens of the machine).
pub fn clear_aws_env(command: &mut Command) {
    for (name, _) in std::env::vars_os() {
        if name.to_string_lossy().starts_with("AWS_") {
            command.env_remove(name);
        }
    }
}

/// The AWS environment a user would `eval` from `ignifuge dev`, isolated from the machine's own
/// AWS configuration; the config file sets path-style addressing.
pub fn aws_command(cluster: &Cluster, program: &str, scratch: &Path) -> Command {
    let config = scratch.join("aws-config");
    std::fs::write(&config, "[default]\ns3 =\n    addressing_style = path\n").expect("write aws config");
    let mut command = Command::new(program);
    clear_aws_env(&mut command);
    for (key, value) in &cluster.exports {
        command.env(key, value);
    }
    command
        .env("AWS_CONFIG_FILE", &config)
        .env("AWS_SHARED_CREDENTIALS_FILE", scratch.join("no-credentials-file"))
        .env("AWS_EC2_METADATA_DISABLED", "true")
        .env("AWS_MAX_ATTEMPTS", "3")
        .env("NO_PROXY", "127.0.0.1,localhost")
        .env("no_proxy", "127.0.0.1,localhost");
    command
}

#[track_caller]
pub fn run_ok(command: &mut Command, timeout: Duration) -> String {
    let description = format!("{command:?}");
    let output = run_with_timeout(command, timeout);
    let stdout = String::from_utf8_lossy(&output.stdout).into_owned();
    assert!(
        output.status.success(),
        "{description} failed with {}\nstdout:\n{stdout}\nstderr:\n{}",
        output.status,
        String::from_utf8_lossy(&output.stderr)
    );
    stdout
}

/// The aws CLI v1 (pip's `awscli`), run as `python3 -m awscli`: whatever `aws` comes first on
/// PATH (Debian's v2 is /usr/bin/aws), this is the one scripts/prerequisites installed with pip.
pub fn aws_v1_command(cluster: &Cluster, scratch: &Path) -> Command {
    let mut command = aws_command(cluster, "python3", scratch);
    command.args(["-m", "awscli"]);
    command
}

/// The aws CLI v1 against the cluster's first gateway.
pub fn aws(cluster: &Cluster, scratch: &Path, args: &[&str]) -> String {
    let mut command = aws_v1_command(cluster, scratch);
    command.arg("--endpoint-url").arg(&cluster.endpoint).args(args);
    run_ok(&mut command, CLI_TIMEOUT)
}

/// Debian's AWS CLI v2 (package `awscli`, /usr/bin/aws), beside pip's v1.
pub const AWS_CLI_V2: &str = "/usr/bin/aws";

/// `program` (an aws CLI) against the cluster's first gateway, its pager off.
pub fn aws_program(cluster: &Cluster, scratch: &Path, program: &str, args: &[&str]) -> String {
    let mut command = aws_command(cluster, program, scratch);
    command.env("AWS_PAGER", "").arg("--endpoint-url").arg(&cluster.endpoint).args(args);
    run_ok(&mut command, CLI_TIMEOUT)
}
