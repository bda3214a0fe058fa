//! Shared harness of the end-to-end tests: starts a real `ignifuge dev` cluster (3 datacenters x
//! 3 storage nodes + 3 gateways, all separate processes on loopback) on ports of its own, and gives
//! the tests what a user of the cluster has: the printed credentials, S3 clients, the admin CLI,
//! a raw HTTP/1.1 client and a SigV4 signer for requests no SDK would send.
//!
//! Each test owns its cluster; dropping the `Cluster` stops it (SIGTERM to `ignifuge dev`, up to
//! 10 s grace, then SIGKILL to its process group) and removes its data directory.
//!
//! Environment knobs:
//! - `IGNIFUGE_TEST_SEED=N` replays a random test with the seed it printed.
//! - `IGNIFUGE_TEST_KEEP_DATA=1` keeps the cluster's temporary directory after the test.

#![allow(dead_code)]

pub mod cli;
pub mod history;

use std::collections::HashMap;
use std::fmt::Write as _;
use std::fs::File;
use std::io::{BufRead, BufReader};
use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicU32, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant, SystemTime};

use aws_sdk_s3::config::interceptors::BeforeDeserializationInterceptorContextRef;
use aws_sdk_s3::config::timeout::TimeoutConfig;
use aws_sdk_s3::config::{
    BehaviorVersion, ConfigBag, Credentials, Intercept, Region, RuntimeComponents, StalledStreamProtectionConfig,
};
use aws_sdk_s3::error::{BoxError, DisplayErrorContext, ProvideErrorMetadata, SdkError};
use aws_sdk_s3::presigning::{PresignedRequest, PresigningConfig};
use aws_sdk_s3::primitives::ByteStream;
use md5::{Digest, Md5};
use rand::rngs::StdRng;
use rand::{RngCore, SeedableRng};
use serde::Deserialize;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

/// The binary under test, built by cargo for this test target.
pub const BIN: &str = env!("CARGO_BIN_EXE_ignifuge");

/// How long `ignifuge dev` may take to print `# ready`.
pub const READY_TIMEOUT: Duration = Duration::from_secs(60);
/// How long `ignifuge dev` gets to stop after SIGTERM before its process group is killed.
pub const STOP_GRACE: Duration = Duration::from_secs(10);
/// Bound on one raw HTTP exchange.
pub const RAW_HTTP_TIMEOUT: Duration = Duration::from_secs(120);
/// Bound on one admin CLI invocation.
pub const ADMIN_TIMEOUT: Duration = Duration::from_secs(60);

/// Ports handed to clusters: [PORT_RANGE_START, PORT_RANGE_END), in blocks of PORTS_PER_CLUSTER.
/// The range stays below Linux's ephemeral range (32768+) so outgoing connections of other
/// processes cannot squat on a cluster's listening ports.
const PORT_RANGE_START: u16 = 20000;
const PORT_RANGE_END: u16 = 32700;
const PORTS_PER_CLUSTER: u16 = 100;
const START_ATTEMPTS_MAX: usize = 3;

static NEXT_CLUSTER: AtomicU32 = AtomicU32::new(0);

/// One process of the cluster, as listed in DIR/cluster.json.
#[derive(Debug, Clone, Deserialize)]
pub struct ProcessInfo {
    pub role: String,
    pub datacenter: String,
    pub node_id: String,
    pub pid: i32,
    pub listen: String,
    /// A gateway's website endpoint.
    #[serde(default)]
    pub web_listen: Option<String>,
    pub data_dir: Option<PathBuf>,
}

#[derive(Debug, Clone, Deserialize)]
pub struct ClusterFile {
    pub endpoint: String,
    /// The dc1 gateway's website endpoint, `{bucket}` standing for the bucket's name.
    #[serde(default)]
    pub website: String,
    pub region: String,
    pub processes: Vec<ProcessInfo>,
}

/// An access key pair as printed by `ignifuge dev` or `ignifuge admin`.
#[derive(Debug, Clone)]
pub struct Keys {
    pub access_key: String,
    pub secret_key: String,
}

pub struct Cluster {
    /// `AWS_ENDPOINT_URL` as printed: the dc1 gateway.
    pub endpoint: String,
    pub access_key: String,
    pub secret_key: String,
    pub region: String,
    /// The `--data-dir` given to `ignifuge dev`.
    pub data_dir: PathBuf,
    pub base_port: u16,
    /// Gateway endpoints (`http://127.0.0.1:PORT`), dc1 first.
    pub gateways: Vec<String>,
    /// Every process from cluster.json.
    pub processes: Vec<ProcessInfo>,
    /// Every `export K=V` line printed before `# ready`, in order.
    pub exports: Vec<(String, String)>,
    /// cluster.json as read after readiness.
    pub cluster_file: ClusterFile,
    child: Child,
    stderr_path: PathBuf,
    /// A node's data directory on a file system of its own (`start_with_small_disk`): declared
    /// before `tempdir`, so it is unmounted (fields drop after `Drop::drop`, once every process
    /// has stopped) before the directory under it is removed.
    small_disk: Option<SmallDisk>,
    tempdir: Option<tempfile::TempDir>,
    /// The runtime rules file of a cluster started by `start_with_rules`: removed once the
    /// cluster is stopped (fields drop after `Drop::drop`), never while a process may read it.
    rules_file: Option<tempfile::NamedTempFile>,
}

/// The runtime fault rules of a cluster's processes (`IGNIFUGE_LINKS_FILE`; the rule language is
/// in `ignifuge_faults`): empty at start, rewritten by the test as it goes, removed with the
/// cluster (which owns the file: a `Rules` is only its path, so it can be cloned or moved into a
/// blocking task).
#[derive(Clone, Debug)]
pub struct Rules {
    path: PathBuf,
}

impl Rules {
    /// Replaces every rule with `rules` (one per line); the processes read it within
    /// `ignifuge_faults::RULES_REREAD_MS`.
    pub fn set(&self, rules: &str) {
        std::fs::write(&self.path, rules).expect("writing the rules file");
    }

    /// No fault any more.
    pub fn clear(&self) {
        self.set("")
    }

    /// The file's path (for a process started by the test itself).
    pub fn path(&self) -> &Path {
        &self.path
    }
}

impl Cluster {
    /// Starts a cluster on free ports and waits until it is ready. Panics (with the tail of the
    /// cluster's stderr) if it does not become ready.
    pub async fn start() -> Cluster {
        Cluster::start_with_env(&[]).await
    }

    /// Like `start`, with extra environment variables for every process of the cluster.
    pub async fn start_with_env(env: &[(&str, &str)]) -> Cluster {
        Cluster::start_with_disk(env, None).await
    }

    /// `start_with_env` with the data directory of `node` on a file system of its own of `bytes`
    /// (a tmpfs, so that the test can fill it: `small_disk`).
    pub async fn start_with_small_disk(node: &str, bytes: u64, env: &[(&str, &str)]) -> Cluster {
        Cluster::start_with_disk(env, Some((node.to_string(), bytes))).await
    }

    async fn start_with_disk(env: &[(&str, &str)], small_disk: Option<(String, u64)>) -> Cluster {
        let env: Vec<(String, String)> = env.iter().map(|(k, v)| (k.to_string(), v.to_string())).collect();
        tokio::task::spawn_blocking(move || {
            let mut last_error = None;
            for attempt in 0..START_ATTEMPTS_MAX {
                match Cluster::try_start_blocking(&env, small_disk.as_ref()) {
                    Ok(cluster) => return cluster,
                    Err(StartError::PortInUse(message)) => {
                        eprintln!("cluster start attempt {attempt}: port in use, retrying: {message}");
                        last_error = Some(message);
                    }
                    Err(StartError::Fatal(message)) => panic!("{message}"),
                }
            }
            panic!("could not start a cluster after {START_ATTEMPTS_MAX} attempts: {}", last_error.unwrap_or_default())
        })
        .await
        .expect("cluster start thread panicked")
    }

    /// `start_with_env` with a rules file (`Rules`) the test can rewrite while the cluster runs.
    pub async fn start_with_rules(env: &[(&str, &str)]) -> (Cluster, Rules) {
        let file = tempfile::NamedTempFile::new().expect("creating the rules file");
        let path = file.path().to_str().expect("a utf-8 rules file path").to_string();
        let mut with_rules: Vec<(&str, &str)> = vec![("IGNIFUGE_LINKS_FILE", path.as_str())];
        with_rules.extend_from_slice(env);
        let mut cluster = Cluster::start_with_env(&with_rules).await;
        let rules = Rules { path: file.path().to_path_buf() };
        cluster.rules_file = Some(file);
        (cluster, rules)
    }

    fn try_start_blocking(env: &[(String, String)], small_disk: Option<&(String, u64)>) -> Result<Cluster, StartError> {
        let base_port = pick_base_port();
        let tempdir = tempfile::Builder::new()
            .prefix("ignifuge-e2e-")
            .tempdir()
            .map_err(|e| StartError::Fatal(format!("tempdir: {e}")))?;
        let data_dir = tempdir.path().join("data");
        std::fs::create_dir_all(&data_dir).map_err(|e| StartError::Fatal(e.to_string()))?;
        let small_disk = match small_disk {
            Some((node, bytes)) => Some(SmallDisk::mount(&data_dir.join(node), *bytes).map_err(StartError::Fatal)?),
            None => None,
        };
        let stderr_path = tempdir.path().join("cluster.stderr.log");
        let stderr_file = File::create(&stderr_path).map_err(|e| StartError::Fatal(e.to_string()))?;

        let mut command = Command::new(BIN);
        // The tests check what the nodes hold, so a GET must read it from them: the gateways'
        // cache of small shards is off unless a test turns it on (`tests/packs.rs` does).
        command.env("IGNIFUGE_GATEWAY_SHARD_CACHE_BYTES", "0");
        command.envs(env.iter().map(|(k, v)| (k.as_str(), v.as_str())));
        command
            .arg("dev")
            .arg("--data-dir")
            .arg(&data_dir)
            .arg("--base-port")
            .arg(base_port.to_string())
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::from(stderr_file))
            // Own process group, so the whole cluster can be killed at once without touching
            // the test runner.
            .process_group(0);
        let mut child = command.spawn().map_err(|e| StartError::Fatal(format!("spawning {BIN} dev: {e}")))?;

        let stdout = child.stdout.take().expect("stdout is piped");
        let (line_sender, line_receiver) = std::sync::mpsc::channel::<String>();
        std::thread::spawn(move || {
            // Keeps draining stdout for the life of the process so it never blocks on a full pipe.
            for line in BufReader::new(stdout).lines() {
                let Ok(line) = line else { break };
                let _ = line_sender.send(line);
            }
        });

        let mut cluster = Cluster {
            endpoint: String::new(),
            access_key: String::new(),
            secret_key: String::new(),
            region: String::new(),
            data_dir: data_dir.clone(),
            base_port,
            gateways: Vec::new(),
            processes: Vec::new(),
            exports: Vec::new(),
            cluster_file: ClusterFile {
                endpoint: String::new(),
                website: String::new(),
                region: String::new(),
                processes: Vec::new(),
            },
            child,
            stderr_path,
            small_disk,
            tempdir: Some(tempdir),
            rules_file: None,
        };

        let deadline = Instant::now() + READY_TIMEOUT;
        let mut stdout_lines = Vec::new();
        loop {
            match line_receiver.recv_timeout(Duration::from_millis(100)) {
                Ok(line) => {
                    stdout_lines.push(line.clone());
                    if line.starts_with("# ready") {
                        break;
                    }
                    if let Some((key, value)) = parse_export_line(&line) {
                        cluster.exports.push((key, value));
                    }
                }
                Err(std::sync::mpsc::RecvTimeoutError::Timeout) => {}
                Err(std::sync::mpsc::RecvTimeoutError::Disconnected) => {
                    // stdout closed: the process is exiting; the check below reports it.
                    std::thread::sleep(Duration::from_millis(200));
                }
            }
            if let Ok(Some(status)) = cluster.child.try_wait() {
                let tail = cluster.stderr_tail(60);
                let message = format!(
                    "`ignifuge dev --base-port {base_port}` exited with {status} before `# ready`.\n\
                     stdout so far:\n{}\nstderr tail:\n{tail}\n{}",
                    stdout_lines.join("\n"),
                    cluster.log_tails(20)
                );
                let lower = message.to_ascii_lowercase();
                return Err(if lower.contains("address already in use") || lower.contains("addrinuse") {
                    StartError::PortInUse(message)
                } else {
                    StartError::Fatal(message)
                });
            }
            if Instant::now() > deadline {
                return Err(StartError::Fatal(format!(
                    "`ignifuge dev --base-port {base_port}` did not print `# ready` within {READY_TIMEOUT:?}.\n\
                     stdout so far:\n{}\nstderr tail:\n{}\n{}",
                    stdout_lines.join("\n"),
                    cluster.stderr_tail(60),
                    cluster.log_tails(20)
                )));
            }
        }

        let export = |name: &str| -> Result<String, StartError> {
            cluster.exports.iter().find(|(key, _)| key == name).map(|(_, value)| value.clone()).ok_or_else(|| {
                StartError::Fatal(format!(
                    "`ignifuge dev` printed no `export {name}=...` line; stdout was:\n{}",
                    stdout_lines.join("\n")
                ))
            })
        };
        cluster.endpoint = export("AWS_ENDPOINT_URL")?;
        cluster.access_key = export("AWS_ACCESS_KEY_ID")?;
        cluster.secret_key = export("AWS_SECRET_ACCESS_KEY")?;
        cluster.region = export("AWS_REGION")?;

        let cluster_json_path = data_dir.join("cluster.json");
        let text = std::fs::read_to_string(&cluster_json_path)
            .map_err(|e| StartError::Fatal(format!("reading {}: {e}", cluster_json_path.display())))?;
        let cluster_file: ClusterFile = serde_json::from_str(&text)
            .map_err(|e| StartError::Fatal(format!("parsing {}: {e}\n{text}", cluster_json_path.display())))?;
        let mut gateways: Vec<&ProcessInfo> = cluster_file.processes.iter().filter(|p| p.role == "gateway").collect();
        gateways.sort_by(|a, b| a.datacenter.cmp(&b.datacenter));
        cluster.gateways = gateways.iter().map(|p| format!("http://{}", p.listen)).collect();
        cluster.processes = cluster_file.processes.clone();
        cluster.cluster_file = cluster_file;
        if cluster.gateways.is_empty() {
            return Err(StartError::Fatal(format!("cluster.json lists no gateway:\n{text}")));
        }
        Ok(cluster)
    }

    /// Last `lines` lines of the cluster's stderr (all processes log there).
    pub fn stderr_tail(&self, lines: usize) -> String {
        let text = std::fs::read(&self.stderr_path).unwrap_or_default();
        let text = String::from_utf8_lossy(&text);
        let all: Vec<&str> = text.lines().collect();
        all[all.len().saturating_sub(lines)..].join("\n")
    }

    /// The last lines of every per-process log under DIR/logs (if the cluster keeps any).
    pub fn log_tails(&self, lines: usize) -> String {
        let mut logs = Vec::new();
        collect_files(&self.data_dir.join("logs"), &mut logs);
        logs.sort();
        let mut out = String::new();
        for log in logs {
            let text = std::fs::read(&log).unwrap_or_default();
            let text = String::from_utf8_lossy(&text);
            let all: Vec<&str> = text.lines().collect();
            let _ = writeln!(
                out,
                "---- {} (last {lines} lines) ----\n{}",
                log.display(),
                all[all.len().saturating_sub(lines)..].join("\n")
            );
        }
        out
    }

    /// Whole stderr of the cluster so far.
    pub fn stderr_text(&self) -> String {
        String::from_utf8_lossy(&std::fs::read(&self.stderr_path).unwrap_or_default()).into_owned()
    }

    /// `host:port` of the dc1 gateway.
    pub fn gateway_addr(&self) -> String {
        authority_of(&self.endpoint).to_owned()
    }

    pub fn keys(&self) -> Keys {
        Keys { access_key: self.access_key.clone(), secret_key: self.secret_key.clone() }
    }

    // ---------------------------------------------------------------- S3 clients

    /// SDK config for `endpoint` with the given key: path style, static credentials, plain HTTP.
    pub fn s3_config(&self, endpoint: &str, access_key: &str, secret_key: &str) -> aws_sdk_s3::config::Builder {
        aws_sdk_s3::config::Builder::new()
            .behavior_version(BehaviorVersion::latest())
            .endpoint_url(endpoint)
            .region(Region::new(self.region.clone()))
            .credentials_provider(Credentials::new(access_key, secret_key, None, None, "ignifuge-e2e"))
            .force_path_style(true)
            .http_client(aws_smithy_http_client::Builder::new().build_http())
            // Tolerant of a loaded 2-core machine running two clusters at once.
            .stalled_stream_protection(
                StalledStreamProtectionConfig::enabled().grace_period(Duration::from_secs(30)).build(),
            )
            .timeout_config(
                TimeoutConfig::builder()
                    .connect_timeout(Duration::from_secs(10))
                    .operation_timeout(Duration::from_secs(300))
                    .build(),
            )
    }

    /// Client of the cluster's own key against the dc1 gateway.
    pub fn s3_client(&self) -> aws_sdk_s3::Client {
        self.client_for(&self.access_key, &self.secret_key)
    }

    /// Client of the cluster's own key against gateway `index` that never retries: every
    /// answer of the gateway reaches the test as it was sent.
    pub fn s3_client_no_retry_at(&self, index: usize) -> aws_sdk_s3::Client {
        let config = self
            .s3_config(&self.gateways[index], &self.access_key, &self.secret_key)
            .retry_config(aws_sdk_s3::config::retry::RetryConfig::disabled())
            .build();
        aws_sdk_s3::Client::from_conf(config)
    }

    /// Client of the cluster's own key against gateway `index` (0 = dc1).
    pub fn s3_client_at(&self, index: usize) -> aws_sdk_s3::Client {
        aws_sdk_s3::Client::from_conf(self.s3_config(&self.gateways[index], &self.access_key, &self.secret_key).build())
    }

    pub fn client_for(&self, access_key: &str, secret_key: &str) -> aws_sdk_s3::Client {
        aws_sdk_s3::Client::from_conf(self.s3_config(&self.endpoint, access_key, secret_key).build())
    }

    pub fn client_for_keys(&self, keys: &Keys) -> aws_sdk_s3::Client {
        self.client_for(&keys.access_key, &keys.secret_key)
    }

    /// A client that records the HTTP status of every response it receives, for the operations
    /// whose success status matters (204 of DeleteObject, 206 of a range GET...).
    pub fn s3_client_with_status(&self) -> (aws_sdk_s3::Client, StatusRecorder) {
        let recorder = StatusRecorder::default();
        let config =
            self.s3_config(&self.endpoint, &self.access_key, &self.secret_key).interceptor(recorder.clone()).build();
        (aws_sdk_s3::Client::from_conf(config), recorder)
    }

    // ---------------------------------------------------------------- admin CLI

    /// Runs `ignifuge admin --data-dir DIR ARGS...`, asserts success, returns its stdout.
    pub fn admin(&self, args: &[&str]) -> String {
        self.cli("admin", args)
    }

    /// Runs `ignifuge admin --data-dir DIR ARGS...` and returns how it ended, failure included.
    pub fn admin_output(&self, args: &[&str]) -> std::process::Output {
        self.cli_output("admin", args)
    }

    fn cli_output(&self, command: &str, args: &[&str]) -> std::process::Output {
        run_with_timeout(Command::new(BIN).arg(command).arg("--data-dir").arg(&self.data_dir).args(args), ADMIN_TIMEOUT)
    }

    /// Runs `ignifuge COMMAND --data-dir DIR ARGS...`, asserts success, returns its stdout.
    pub fn cli(&self, command: &str, args: &[&str]) -> String {
        let output = self.cli_output(command, args);
        assert!(
            output.status.success(),
            "`ignifuge {command} {}` failed with {}\nstdout:\n{}\nstderr:\n{}",
            args.join(" "),
            output.status,
            String::from_utf8_lossy(&output.stdout),
            String::from_utf8_lossy(&output.stderr)
        );
        String::from_utf8(output.stdout).expect("admin stdout is UTF-8")
    }

    /// `admin durability --json`, parsed.
    pub fn durability(&self) -> serde_json::Value {
        let out = self.admin(&["durability", "--json"]);
        serde_json::from_str(&out).unwrap_or_else(|e| panic!("admin durability --json ({e}): {out}"))
    }

    /// Polls `admin durability --json` until it says healthy; returns that report.
    pub fn wait_until_healthy(&self, timeout: Duration) -> serde_json::Value {
        let deadline = Instant::now() + timeout;
        loop {
            let report = self.durability();
            if report["healthy"] == true {
                return report;
            }
            assert!(
                Instant::now() < deadline,
                "not healthy within {timeout:?}; last report:\n{report:#}\n{}",
                self.log_tails(15)
            );
            std::thread::sleep(Duration::from_millis(500));
        }
    }

    /// Re-reads cluster.json (after processes were restarted by a command).
    pub fn reload_processes(&mut self) {
        let text = std::fs::read_to_string(self.data_dir.join("cluster.json")).expect("cluster.json");
        let fresh: ClusterFile = serde_json::from_str(&text).expect("cluster.json parses");
        self.processes = fresh.processes.clone();
        self.cluster_file = fresh;
    }

    /// `admin tenant create NAME`: the key of the new tenant.
    pub fn create_tenant(&self, name: &str) -> Keys {
        let stdout = self.admin(&["tenant", "create", name]);
        keys_from_exports(&stdout)
    }

    /// `admin key create --tenant NAME`: a new key of an existing tenant.
    pub fn create_key(&self, tenant: &str) -> Keys {
        let stdout = self.admin(&["key", "create", "--tenant", tenant]);
        keys_from_exports(&stdout)
    }

    // ---------------------------------------------------------------- processes and disks

    pub fn storage_nodes(&self) -> Vec<&ProcessInfo> {
        self.processes.iter().filter(|p| p.role == "node").collect()
    }

    pub fn process(&self, node_id: &str) -> &ProcessInfo {
        self.processes
            .iter()
            .find(|p| p.node_id == node_id)
            .unwrap_or_else(|| panic!("no process {node_id} in cluster.json: {:?}", self.processes))
    }

    /// SIGKILLs one process of the cluster and waits until it is gone.
    pub fn kill_node(&self, node_id: &str) {
        let pid = self.process(node_id).pid;
        assert!(pid_alive(pid), "{node_id} (pid {pid}) is not running before the kill");
        // SAFETY: kill(2) with a pid read from cluster.json; it is a child of our `ignifuge dev`.
        let rc = unsafe { libc::kill(pid, libc::SIGKILL) };
        assert_eq!(rc, 0, "kill -9 {pid} ({node_id}) failed");
        let deadline = Instant::now() + Duration::from_secs(10);
        while pid_alive(pid) {
            assert!(Instant::now() < deadline, "{node_id} (pid {pid}) survived SIGKILL");
            std::thread::sleep(Duration::from_millis(20));
        }
    }

    /// SIGKILLs several processes at once (as a datacenter that burns), then waits until every
    /// one of them is gone.
    pub fn kill_processes(&self, node_ids: &[&str]) {
        let pids: Vec<(String, i32)> = node_ids.iter().map(|id| (id.to_string(), self.process(id).pid)).collect();
        for (node_id, pid) in &pids {
            assert!(pid_alive(*pid), "{node_id} (pid {pid}) is not running before the kill");
        }
        for (node_id, pid) in &pids {
            // SAFETY: kill(2) with a pid read from cluster.json; it is a child of our `ignifuge dev`.
            let rc = unsafe { libc::kill(*pid, libc::SIGKILL) };
            assert_eq!(rc, 0, "kill -9 {pid} ({node_id}) failed");
        }
        let deadline = Instant::now() + Duration::from_secs(10);
        for (node_id, pid) in &pids {
            while pid_alive(*pid) {
                assert!(Instant::now() < deadline, "{node_id} (pid {pid}) survived SIGKILL");
                std::thread::sleep(Duration::from_millis(20));
            }
        }
    }

    /// Sends `signal` (SIGSTOP, SIGCONT, ...) to processes of the cluster: SIGSTOP freezes a
    /// process with its sockets open, as a stalled host or a partition that heals does.
    pub fn signal_processes(&self, node_ids: &[&str], signal: i32) {
        for node_id in node_ids {
            let pid = self.process(node_id).pid;
            // SAFETY: kill(2) with a pid read from cluster.json; it is a child of our `ignifuge dev`.
            let rc = unsafe { libc::kill(pid, signal) };
            assert_eq!(rc, 0, "kill -{signal} {pid} ({node_id}) failed");
        }
    }

    /// Node ids of every process of `datacenter` (storage nodes and its gateway).
    pub fn datacenter_processes(&self, datacenter: &str) -> Vec<String> {
        self.processes.iter().filter(|p| p.datacenter == datacenter).map(|p| p.node_id.clone()).collect()
    }

    /// Starts a PutObject whose body the test sends piece by piece (`SlowUpload::send`), signed
    /// with UNSIGNED-PAYLOAD as `keys`, on the gateway at `gateway` (an index into `gateways`).
    pub async fn slow_put(&self, keys: &Keys, gateway: usize, bucket: &str, key: &str, length: usize) -> SlowUpload {
        let url = format!("{}/{bucket}/{key}", self.gateways[gateway]);
        let length_text = length.to_string();
        let signed =
            self.sign(keys, SystemTime::now(), "PUT", &url, &[("content-length", &length_text)], Payload::Unsigned);
        let addr = authority_of(&url).to_string();
        let head = build_request_head(&addr, "PUT", path_and_query_of(&url), &signed, Some(length));
        let mut stream = TcpStream::connect(&addr).await.unwrap_or_else(|e| panic!("connecting to {addr}: {e}"));
        stream.write_all(head.as_bytes()).await.expect("sending the request head");
        SlowUpload { stream }
    }

    /// Index into `gateways` of the gateway of `datacenter`.
    pub fn gateway_index(&self, datacenter: &str) -> usize {
        let gateway = self
            .processes
            .iter()
            .find(|p| p.role == "gateway" && p.datacenter == datacenter)
            .unwrap_or_else(|| panic!("no gateway in {datacenter}: {:?}", self.processes));
        let url = format!("http://{}", gateway.listen);
        self.gateways.iter().position(|g| *g == url).unwrap_or_else(|| panic!("{url} is not in {:?}", self.gateways))
    }

    /// Restarts every dead process of the cluster the way an operator does: SIGUSR1 to
    /// `ignifuge dev`, which restarts its dead children with their data directories. Waits until
    /// `ignifuge dev` has noticed each death first (it only restarts children it knows are dead),
    /// then until cluster.json lists a live new pid for each and each accepts TCP connections on
    /// its address. Refreshes `processes` and `cluster_file`; returns the restarted node ids.
    pub fn revive(&mut self, timeout: Duration) -> Vec<String> {
        self.restart_dead(timeout, true)
    }

    /// Restarts every dead process like `revive`, but waits only until cluster.json lists a new
    /// pid for each: a process restarted into a `crash` rule may exit again at once.
    pub fn respawn(&mut self, timeout: Duration) -> Vec<String> {
        self.restart_dead(timeout, false)
    }

    fn restart_dead(&mut self, timeout: Duration, until_serving: bool) -> Vec<String> {
        let deadline = Instant::now() + timeout;
        let dead: Vec<ProcessInfo> = self.processes.iter().filter(|p| !pid_alive(p.pid)).cloned().collect();
        assert!(!dead.is_empty(), "revive: no process of the cluster is dead");
        for process in &dead {
            let line = format!("{} {} (pid {}) exited", process.role, process.node_id, process.pid);
            while !self.stderr_text().contains(&line) {
                assert!(
                    Instant::now() < deadline,
                    "revive: `ignifuge dev` did not report `{line}` within {timeout:?}\n{}",
                    self.stderr_tail(30)
                );
                std::thread::sleep(Duration::from_millis(50));
            }
        }
        // SAFETY: a signal to the `ignifuge dev` process we spawned.
        let rc = unsafe { libc::kill(self.dev_pid(), libc::SIGUSR1) };
        assert_eq!(rc, 0, "kill -USR1 {} failed", self.dev_pid());
        let cluster_json_path = self.data_dir.join("cluster.json");
        let cluster_file = loop {
            let fresh = std::fs::read_to_string(&cluster_json_path)
                .ok()
                .and_then(|text| serde_json::from_str::<ClusterFile>(&text).ok());
            if let Some(fresh) = fresh {
                let all_back = dead.iter().all(|old| {
                    fresh
                        .processes
                        .iter()
                        .any(|p| p.node_id == old.node_id && p.pid != old.pid && (!until_serving || pid_alive(p.pid)))
                });
                if all_back {
                    break fresh;
                }
            }
            assert!(
                Instant::now() < deadline,
                "revive: cluster.json does not list live new pids for {:?} within {timeout:?}\n{}",
                dead.iter().map(|p| &p.node_id).collect::<Vec<_>>(),
                self.stderr_tail(30)
            );
            std::thread::sleep(Duration::from_millis(50));
        };
        self.processes = cluster_file.processes.clone();
        self.cluster_file = cluster_file;
        for process in dead.iter().filter(|_| until_serving) {
            while std::net::TcpStream::connect(&process.listen).is_err() {
                assert!(
                    Instant::now() < deadline,
                    "revive: {} does not listen on {} within {timeout:?}\n{}",
                    process.node_id,
                    process.listen,
                    self.log_tails(20)
                );
                std::thread::sleep(Duration::from_millis(50));
            }
        }
        dead.into_iter().map(|p| p.node_id).collect()
    }

    // ---------------------------------------------------------------- metadata group (Raft)

    /// `ignifuge admin status --json`: every voter's view of the metadata group.
    pub fn meta_status(&self) -> MetaStatus {
        let text = self.admin(&["status", "--json"]);
        let mut status: MetaStatus = serde_json::from_str(&text)
            .unwrap_or_else(|e| panic!("`ignifuge admin status --json` printed unparsable JSON ({e}):\n{text}"));
        status.raw = text;
        status
    }

    /// Polls `admin status --json` until some voter is the leader.
    pub fn wait_for_leader(&self, timeout: Duration) -> MetaStatus {
        let deadline = Instant::now() + timeout;
        loop {
            let status = self.meta_status();
            if status.leader.is_some() && status.leader_datacenter.is_some() {
                return status;
            }
            assert!(Instant::now() < deadline, "no metadata leader within {timeout:?}; last status:\n{}", status.raw);
            std::thread::sleep(Duration::from_millis(200));
        }
    }

    /// The file system of its own that one node's data directory is on (`start_with_small_disk`).
    pub fn small_disk(&self) -> &SmallDisk {
        self.small_disk.as_ref().expect("a cluster started with a small disk")
    }

    /// `<node data_dir>/shards` of a storage node.
    pub fn shards_dir(&self, node_id: &str) -> PathBuf {
        let process = self.process(node_id);
        process.data_dir.as_ref().unwrap_or_else(|| panic!("{node_id} has no data_dir in cluster.json")).join("shards")
    }

    /// Every regular file below a node's shards/ directory, sorted.
    pub fn shard_files(&self, node_id: &str) -> Vec<PathBuf> {
        let mut files = Vec::new();
        collect_files(&self.shards_dir(node_id), &mut files);
        files.sort();
        files
    }

    /// Shard files on every storage node of the cluster.
    /// The blob directories (one per blob, whatever its shards) on every node.
    pub fn blob_dirs(&self) -> std::collections::BTreeSet<String> {
        let mut blobs = std::collections::BTreeSet::new();
        for node in self.storage_nodes() {
            for file in self.shard_files(&node.node_id) {
                let blob = file.parent().and_then(|p| p.file_name()).and_then(|n| n.to_str()).expect("blob dir");
                blobs.insert(blob.to_string());
            }
        }
        blobs
    }

    pub fn shard_file_count(&self) -> usize {
        self.storage_nodes().iter().map(|n| self.shard_files(&n.node_id).len()).sum()
    }

    /// pid of the `ignifuge dev` process.
    pub fn dev_pid(&self) -> i32 {
        self.child.id() as i32
    }

    /// Sends SIGTERM to `ignifuge dev` and waits up to STOP_GRACE for it to exit; None if it
    /// did not. (Drop still cleans up whatever is left.)
    pub fn terminate(&mut self) -> Option<std::process::ExitStatus> {
        // SAFETY: a signal to the `ignifuge dev` process we spawned.
        unsafe { libc::kill(self.dev_pid(), libc::SIGTERM) };
        let deadline = Instant::now() + STOP_GRACE;
        while Instant::now() < deadline {
            if let Ok(Some(status)) = self.child.try_wait() {
                return Some(status);
            }
            std::thread::sleep(Duration::from_millis(50));
        }
        None
    }

    // ---------------------------------------------------------------- raw HTTP

    /// Signs a request with SigV4 (header auth) as `keys` at `time`; returns the headers to send
    /// (the given ones plus host, x-amz-date, x-amz-content-sha256 and authorization).
    pub fn sign(
        &self,
        keys: &Keys,
        time: SystemTime,
        method: &str,
        url: &str,
        headers: &[(&str, &str)],
        payload: Payload<'_>,
    ) -> Vec<(String, String)> {
        sign_request(&self.region, keys, time, method, url, headers, payload)
    }

    /// Signs with the cluster key, now, and sends the request to the host of `url`.
    pub async fn signed_request(&self, method: &str, url: &str, headers: &[(&str, &str)], body: &[u8]) -> RawResponse {
        let signed = self.sign(&self.keys(), SystemTime::now(), method, url, headers, Payload::Bytes(body));
        raw_request(authority_of(url), method, path_and_query_of(url), &signed, body)
            .await
            .unwrap_or_else(|e| panic!("{method} {url}: {e:#}"))
    }

    /// The website endpoint's URL of `bucket` (`http://BUCKET.s3-website.localhost:PORT/`).
    pub fn website_url(&self, bucket: &str) -> String {
        self.cluster_file.website.replace("{bucket}", bucket)
    }

    /// `127.0.0.1:PORT` of the website endpoint of the gateway at `index` (dc1 first).
    pub fn website_addr(&self, index: usize) -> String {
        let gateways: Vec<&ProcessInfo> = self.processes.iter().filter(|p| p.role == "gateway").collect();
        gateways[index].web_listen.clone().expect("gateways list their website endpoint")
    }

    /// `http://127.0.0.1:PORT/` + path (already percent-encoded) on the dc1 gateway.
    pub fn url(&self, path_and_query: &str) -> String {
        format!("{}{}", self.endpoint.trim_end_matches('/'), path_and_query)
    }
}

impl Drop for Cluster {
    fn drop(&mut self) {
        let pid = self.child.id() as i32;
        // SAFETY: signals to the `ignifuge dev` process we spawned.
        unsafe { libc::kill(pid, libc::SIGTERM) };
        let deadline = Instant::now() + STOP_GRACE;
        loop {
            match self.child.try_wait() {
                Ok(Some(_)) => break,
                Ok(None) if Instant::now() < deadline => std::thread::sleep(Duration::from_millis(50)),
                _ => {
                    eprintln!("`ignifuge dev` (pid {pid}) ignored SIGTERM for {STOP_GRACE:?}; killing it");
                    unsafe { libc::kill(pid, libc::SIGKILL) };
                    let _ = self.child.wait();
                    break;
                }
            }
        }
        // Whatever of the cluster outlived `ignifuge dev` (its process group, and any listed
        // process of our binary that moved to another group).
        // SAFETY: the group was created by our spawn (process_group(0)), its id is our child's pid.
        unsafe { libc::kill(-pid, libc::SIGKILL) };
        let our_exe = std::fs::canonicalize(BIN).ok();
        for process in &self.processes {
            let exe = std::fs::read_link(format!("/proc/{}/exe", process.pid)).ok();
            if pid_alive(process.pid) && exe.is_some() && exe == our_exe {
                unsafe { libc::kill(process.pid, libc::SIGKILL) };
            }
        }
        if std::thread::panicking() {
            eprintln!(
                "---- ignifuge dev (base port {}) stderr tail ----\n{}\n---- end of stderr ----",
                self.base_port,
                self.stderr_tail(80)
            );
            eprintln!("{}", self.log_tails(20));
        }
        if std::env::var_os("IGNIFUGE_TEST_KEEP_DATA").is_some() {
            if let Some(tempdir) = self.tempdir.take() {
                let kept = tempdir.keep();
                eprintln!("kept cluster data in {}", kept.display());
            }
        }
    }
}

/// A directory on a file system of its own, small enough to fill: a tmpfs the test mounts (the
/// tests run as root, as their network namespaces need), unmounted when dropped.
pub struct SmallDisk {
    path: PathBuf,
}

impl SmallDisk {
    fn mount(path: &Path, bytes: u64) -> Result<SmallDisk, String> {
        std::fs::create_dir_all(path).map_err(|e| format!("{}: {e}", path.display()))?;
        let output = Command::new("mount")
            .args(["-t", "tmpfs", "-o", &format!("size={bytes}"), "tmpfs"])
            .arg(path)
            .output()
            .map_err(|e| format!("running mount: {e}"))?;
        if !output.status.success() {
            return Err(format!("mounting a tmpfs on {}: {}", path.display(), String::from_utf8_lossy(&output.stderr)));
        }
        Ok(SmallDisk { path: path.to_path_buf() })
    }

    /// Takes all the room left with one file (`dd` until the disk is full), as another user of
    /// the disk would; removing it gives the room back.
    pub fn fill(&self) -> PathBuf {
        let filler = self.path.join("filler");
        let output = Command::new("dd")
            .arg("if=/dev/zero")
            .arg(format!("of={}", filler.display()))
            .arg("bs=1M")
            .output()
            .expect("running dd");
        let said = String::from_utf8_lossy(&output.stderr);
        assert!(said.contains("No space left"), "dd stopped before the disk was full: {said}");
        filler
    }
}

impl Drop for SmallDisk {
    fn drop(&mut self) {
        if std::env::var_os("IGNIFUGE_TEST_KEEP_DATA").is_some() {
            eprintln!("kept {} mounted (umount it when done)", self.path.display());
            return;
        }
        let _ = Command::new("umount").arg("-l").arg(&self.path).status();
    }
}

enum StartError {
    PortInUse(String),
    Fatal(String),
}

fn pick_base_port() -> u16 {
    let blocks = ((PORT_RANGE_END - PORT_RANGE_START) / PORTS_PER_CLUSTER) as u32;
    let offset = std::process::id().wrapping_mul(7919);
    for _ in 0..blocks {
        let n = NEXT_CLUSTER.fetch_add(1, Ordering::SeqCst);
        let block = offset.wrapping_add(n) % blocks;
        let base = PORT_RANGE_START + (block as u16) * PORTS_PER_CLUSTER;
        let all_free =
            (base..base + PORTS_PER_CLUSTER).all(|port| std::net::TcpListener::bind(("127.0.0.1", port)).is_ok());
        if all_free {
            return base;
        }
    }
    panic!("no free block of {PORTS_PER_CLUSTER} ports in {PORT_RANGE_START}..{PORT_RANGE_END}");
}

/// Parses `export K=V` (V optionally single- or double-quoted).
pub fn parse_export_line(line: &str) -> Option<(String, String)> {
    let rest = line.trim().strip_prefix("export ")?;
    let (key, value) = rest.split_once('=')?;
    let value = value.trim();
    let value = if value.len() >= 2
        && ((value.starts_with('\'') && value.ends_with('\'')) || (value.starts_with('"') && value.ends_with('"')))
    {
        &value[1..value.len() - 1]
    } else {
        value
    };
    Some((key.trim().to_owned(), value.to_owned()))
}

pub fn parse_exports(text: &str) -> HashMap<String, String> {
    text.lines().filter_map(parse_export_line).collect()
}

fn keys_from_exports(stdout: &str) -> Keys {
    let exports = parse_exports(stdout);
    let get = |name: &str| {
        exports.get(name).cloned().unwrap_or_else(|| panic!("admin printed no `export {name}=...`:\n{stdout}"))
    };
    Keys { access_key: get("AWS_ACCESS_KEY_ID"), secret_key: get("AWS_SECRET_ACCESS_KEY") }
}

/// Alive and not a zombie.
pub fn pid_alive(pid: i32) -> bool {
    match std::fs::read_to_string(format!("/proc/{pid}/stat")) {
        Ok(stat) => {
            // Field 3 (after the parenthesised command name) is the state.
            let state = stat.rsplit_once(')').and_then(|(_, rest)| rest.split_whitespace().next()).unwrap_or("?");
            state != "Z" && state != "X"
        }
        Err(_) => false,
    }
}

fn collect_files(dir: &Path, out: &mut Vec<PathBuf>) {
    let Ok(entries) = std::fs::read_dir(dir) else {
        return;
    };
    for entry in entries.flatten() {
        let Ok(file_type) = entry.file_type() else {
            continue;
        };
        if file_type.is_dir() {
            collect_files(&entry.path(), out);
        } else if file_type.is_file() {
            out.push(entry.path());
        }
    }
}

/// Inverts `count` bytes in the middle of a file, in place (same inode, same size).
pub fn flip_bytes_in_middle(path: &Path, count: usize) {
    use std::io::{Read, Seek, SeekFrom, Write};
    let mut file = std::fs::OpenOptions::new()
        .read(true)
        .write(true)
        .open(path)
        .unwrap_or_else(|e| panic!("open {} for corruption: {e}", path.display()));
    let length = file.metadata().expect("metadata").len() as usize;
    assert!(length > 0, "{} is empty", path.display());
    let count = count.min(length);
    let offset = (length - count) / 2;
    let mut buffer = vec![0u8; count];
    file.seek(SeekFrom::Start(offset as u64)).expect("seek");
    file.read_exact(&mut buffer).expect("read");
    for byte in &mut buffer {
        *byte = !*byte;
    }
    file.seek(SeekFrom::Start(offset as u64)).expect("seek");
    file.write_all(&buffer).expect("write");
    file.sync_all().expect("sync");
}

/// Runs a command to completion, killing it after `timeout`.
pub fn run_with_timeout(command: &mut Command, timeout: Duration) -> std::process::Output {
    let description = format!("{command:?}");
    let mut child = command
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap_or_else(|e| panic!("spawning {description}: {e}"));
    let pid = child.id() as i32;
    let finished = Arc::new(std::sync::atomic::AtomicBool::new(false));
    let watchdog = {
        let finished = finished.clone();
        std::thread::spawn(move || {
            let deadline = Instant::now() + timeout;
            while Instant::now() < deadline {
                if finished.load(Ordering::SeqCst) {
                    return false;
                }
                std::thread::sleep(Duration::from_millis(100));
            }
            if !finished.load(Ordering::SeqCst) {
                // SAFETY: our own child, still unreaped (wait_with_output has not returned).
                unsafe { libc::kill(pid, libc::SIGKILL) };
                return true;
            }
            false
        })
    };
    let _ = child.stdin.take();
    let output = child.wait_with_output().unwrap_or_else(|e| panic!("waiting for {description}: {e}"));
    finished.store(true, Ordering::SeqCst);
    let timed_out = watchdog.join().unwrap_or(false);
    assert!(
        !timed_out,
        "{description} did not finish within {timeout:?}\nstdout:\n{}\nstderr:\n{}",
        String::from_utf8_lossy(&output.stdout),
        String::from_utf8_lossy(&output.stderr)
    );
    output
}

// ---------------------------------------------------------------- metadata status

/// What `ignifuge admin status --json` prints.
#[derive(Debug, Clone, Deserialize)]
pub struct MetaStatus {
    /// Node id of the leader (as one of the voters sees itself), if any voter is the leader.
    pub leader: Option<String>,
    pub leader_datacenter: Option<String>,
    /// Voters, then learners.
    pub members: Vec<MemberStatus>,
    /// The JSON as printed, for assertion messages.
    #[serde(skip)]
    pub raw: String,
}

#[derive(Debug, Clone, Deserialize)]
pub struct MemberStatus {
    pub node: String,
    pub datacenter: String,
    /// "voter" or "learner", as the stored layout names the node.
    pub role: String,
    /// Entries the member's applied state is behind the leader's log.
    #[serde(default)]
    pub lag: Option<u64>,
    pub reachable: bool,
    #[serde(default)]
    pub status: Option<RaftStatus>,
    #[serde(default)]
    pub error: Option<String>,
}

/// One voter's own view of the group, as `ignifuge admin status --json` prints it.
/// The storage nodes of `ignifuge dev`, in name order: 3 datacenters of 3 nodes, all of them
/// metadata voters.
pub fn node_ids() -> Vec<String> {
    ["dc1", "dc2", "dc3"].iter().flat_map(|dc| (1..=3).map(move |n| format!("{dc}-n{n}"))).collect()
}

pub use ignifuge_raft::RaftStatus;

impl MetaStatus {
    pub fn voters(&self) -> impl Iterator<Item = &MemberStatus> {
        self.members.iter().filter(|m| m.role == "voter")
    }

    pub fn learners(&self) -> impl Iterator<Item = &MemberStatus> {
        self.members.iter().filter(|m| m.role == "learner")
    }

    pub fn member(&self, node: &str) -> &MemberStatus {
        self.members.iter().find(|v| v.node == node).unwrap_or_else(|| panic!("no member {node} in\n{}", self.raw))
    }

    /// The leader's own status.
    pub fn leader_status(&self) -> Option<&RaftStatus> {
        let leader = self.leader.as_deref()?;
        self.members.iter().find(|v| v.node == leader)?.status.as_ref()
    }

    /// One line per member: node, role, state, term, last log and applied indexes.
    pub fn summary(&self) -> String {
        let mut out = format!("leader {:?} ({:?})", self.leader, self.leader_datacenter);
        for voter in &self.members {
            match &voter.status {
                Some(s) if voter.reachable => {
                    let _ = write!(
                        out,
                        "; {} ({}) {} term {} last log {:?} applied {:?}",
                        voter.node, voter.role, s.state, s.term, s.last_log_index, s.applied_index
                    );
                }
                _ => {
                    let _ = write!(out, "; {} unreachable", voter.node);
                }
            }
        }
        out
    }
}

// ---------------------------------------------------------------- SDK helpers

/// Records the status of the last HTTP response a client received.
#[derive(Debug, Clone, Default)]
pub struct StatusRecorder(Arc<Mutex<Option<u16>>>);

impl StatusRecorder {
    pub fn last(&self) -> Option<u16> {
        *self.0.lock().expect("status recorder lock")
    }
    pub fn reset(&self) {
        *self.0.lock().expect("status recorder lock") = None;
    }
}

impl Intercept for StatusRecorder {
    fn name(&self) -> &'static str {
        "StatusRecorder"
    }

    fn read_before_deserialization(
        &self,
        context: &BeforeDeserializationInterceptorContextRef<'_>,
        _runtime_components: &RuntimeComponents,
        _cfg: &mut ConfigBag,
    ) -> Result<(), BoxError> {
        *self.0.lock().expect("status recorder lock") = Some(context.response().status().as_u16());
        Ok(())
    }
}

/// What a failed SDK call looked like on the wire.
#[derive(Debug, Clone)]
pub struct ErrorInfo {
    pub status: Option<u16>,
    pub code: Option<String>,
    pub description: String,
}

/// Status, S3 error code and description of a failed SDK call.
pub fn error_info<E>(error: &SdkError<E>) -> ErrorInfo
where
    E: ProvideErrorMetadata + std::error::Error + Send + Sync + 'static,
{
    ErrorInfo {
        status: error.raw_response().map(|r| r.status().as_u16()),
        code: error.code().map(str::to_owned),
        description: format!("{}", DisplayErrorContext(error)),
    }
}

/// Unwraps the error of an SDK call that was expected to fail.
#[track_caller]
pub fn expect_err<T, E>(result: Result<T, SdkError<E>>, context: &str) -> ErrorInfo
where
    E: ProvideErrorMetadata + std::error::Error + Send + Sync + 'static,
{
    match result {
        Ok(_) => panic!("{context}: expected an error response, but the request succeeded"),
        Err(error) => ErrorInfo {
            status: error.raw_response().map(|r| r.status().as_u16()),
            code: error.code().map(str::to_owned),
            description: format!("{}", DisplayErrorContext(&error)),
        },
    }
}

/// Asserts an SDK call failed with this HTTP status and one of these S3 error codes.
#[track_caller]
pub fn assert_s3_error<T, E>(result: Result<T, SdkError<E>>, status: u16, codes: &[&str], context: &str) -> ErrorInfo
where
    E: ProvideErrorMetadata + std::error::Error + Send + Sync + 'static,
{
    let info = expect_err(result, context);
    assert_eq!(info.status, Some(status), "{context}: expected HTTP {status} {codes:?}, got {info:?}");
    assert!(
        info.code.as_deref().is_some_and(|c| codes.contains(&c)),
        "{context}: expected S3 error code {codes:?}, got {info:?}"
    );
    info
}

/// Asserts an SDK call failed with this HTTP status (HEAD responses carry no error code).
#[track_caller]
pub fn assert_status<T, E>(result: Result<T, SdkError<E>>, status: u16, context: &str) -> ErrorInfo
where
    E: ProvideErrorMetadata + std::error::Error + Send + Sync + 'static,
{
    let info = expect_err(result, context);
    assert_eq!(info.status, Some(status), "{context}: expected HTTP {status}, got {info:?}");
    info
}

/// Panics with the full error chain of an SDK error.
#[track_caller]
pub fn ok<T, E>(result: Result<T, SdkError<E>>, context: &str) -> T
where
    E: std::error::Error + Send + Sync + 'static,
{
    match result {
        Ok(value) => value,
        Err(error) => panic!("{context}: {}", DisplayErrorContext(&error)),
    }
}

pub async fn create_bucket(client: &aws_sdk_s3::Client, bucket: &str) {
    ok(client.create_bucket().bucket(bucket).send().await, &format!("CreateBucket {bucket}"));
}

/// PutObject from memory; returns the ETag.
pub async fn put_object(client: &aws_sdk_s3::Client, bucket: &str, key: &str, data: &[u8]) -> String {
    let output = ok(
        client.put_object().bucket(bucket).key(key).body(ByteStream::from(data.to_vec())).send().await,
        &format!("PutObject {bucket}/{key} ({} bytes)", data.len()),
    );
    output.e_tag().unwrap_or_else(|| panic!("PutObject {bucket}/{key} returned no ETag")).to_owned()
}

/// GetObject, whole body.
pub async fn get_object(client: &aws_sdk_s3::Client, bucket: &str, key: &str) -> Vec<u8> {
    let output = ok(client.get_object().bucket(bucket).key(key).send().await, &format!("GetObject {bucket}/{key}"));
    output
        .body
        .collect()
        .await
        .unwrap_or_else(|e| panic!("GetObject {bucket}/{key}: reading body: {e}"))
        .into_bytes()
        .to_vec()
}

/// Every key of a bucket, via ListObjectsV2 pages.
pub async fn list_all_keys(client: &aws_sdk_s3::Client, bucket: &str) -> Vec<String> {
    let mut keys = Vec::new();
    let mut token: Option<String> = None;
    for _ in 0..10_000 {
        let page = ok(
            client.list_objects_v2().bucket(bucket).set_continuation_token(token.clone()).send().await,
            &format!("ListObjectsV2 {bucket}"),
        );
        keys.extend(page.contents().iter().filter_map(|o| o.key().map(str::to_owned)));
        if page.is_truncated() == Some(true) {
            token =
                Some(page.next_continuation_token().expect("truncated page without NextContinuationToken").to_owned());
        } else {
            return keys;
        }
    }
    panic!("ListObjectsV2 {bucket} did not end after 10000 pages");
}

/// Sends a presigned request as-is with a raw HTTP client.
pub async fn send_presigned(presigned: &PresignedRequest, body: &[u8]) -> RawResponse {
    send_presigned_to(presigned, None, body).await
}

/// Sends a presigned request to `connect_to` (host:port) instead of the URL's host; the Host
/// header stays the URL's authority (for virtual-hosted-style URLs that do not resolve).
pub async fn send_presigned_to(presigned: &PresignedRequest, connect_to: Option<&str>, body: &[u8]) -> RawResponse {
    let uri = presigned.uri();
    let authority = authority_of(uri);
    let mut headers: Vec<(String, String)> = presigned.headers().map(|(k, v)| (k.to_owned(), v.to_owned())).collect();
    if !headers.iter().any(|(k, _)| k.eq_ignore_ascii_case("host")) {
        headers.push(("Host".to_owned(), authority.to_owned()));
    }
    raw_request(connect_to.unwrap_or(authority), presigned.method(), path_and_query_of(uri), &headers, body)
        .await
        .unwrap_or_else(|e| panic!("{} {uri}: {e:#}", presigned.method()))
}

pub fn presign_config(expires_in: Duration) -> PresigningConfig {
    PresigningConfig::expires_in(expires_in).expect("valid presigning config")
}

// ---------------------------------------------------------------- data helpers

/// A seeded RNG whose seed is printed (and so shown by the test runner when the test fails).
pub struct TestRng {
    pub seed: u64,
    rng: StdRng,
}

impl TestRng {
    pub fn new(test_name: &str) -> TestRng {
        let seed =
            std::env::var("IGNIFUGE_TEST_SEED").ok().and_then(|s| s.parse().ok()).unwrap_or_else(rand::random::<u64>);
        println!("{test_name}: random seed {seed} (replay with IGNIFUGE_TEST_SEED={seed})");
        TestRng { seed, rng: StdRng::seed_from_u64(seed) }
    }

    pub fn bytes(&mut self, len: usize) -> Vec<u8> {
        let mut data = vec![0u8; len];
        self.rng.fill_bytes(&mut data);
        data
    }

    pub fn next_u64(&mut self) -> u64 {
        self.rng.next_u64()
    }

    /// Writes `len` random bytes to `path` in 1 MiB pieces; returns their md5 hex.
    pub fn write_file(&mut self, path: &Path, len: usize) -> String {
        use std::io::Write;
        let mut file = std::io::BufWriter::new(File::create(path).expect("create data file"));
        let mut hasher = Md5::new();
        let mut remaining = len;
        let mut chunk = vec![0u8; 1 << 20];
        while remaining > 0 {
            let n = remaining.min(chunk.len());
            self.rng.fill_bytes(&mut chunk[..n]);
            hasher.update(&chunk[..n]);
            file.write_all(&chunk[..n]).expect("write data file");
            remaining -= n;
        }
        file.flush().expect("flush data file");
        hex::encode(hasher.finalize())
    }
}

pub fn md5_hex(data: &[u8]) -> String {
    hex::encode(Md5::digest(data))
}

pub fn md5_base64(data: &[u8]) -> String {
    aws_smithy_types::base64::encode(Md5::digest(data))
}

/// md5 hex of a file, streamed.
pub fn md5_file(path: &Path) -> String {
    use std::io::Read;
    let mut file = File::open(path).unwrap_or_else(|e| panic!("open {}: {e}", path.display()));
    let mut hasher = Md5::new();
    let mut buffer = vec![0u8; 1 << 20];
    loop {
        let n = file.read(&mut buffer).expect("read file");
        if n == 0 {
            break;
        }
        hasher.update(&buffer[..n]);
    }
    hex::encode(hasher.finalize())
}

/// The ETag S3 gives a single-part object: quoted hex md5 of its bytes.
pub fn etag_of(data: &[u8]) -> String {
    format!("\"{}\"", md5_hex(data))
}

/// The ETag S3 gives a multipart object: hex(md5(concat of part md5 digests)) + "-N", quoted.
pub fn multipart_etag(parts: &[&[u8]]) -> String {
    let mut digests = Vec::with_capacity(parts.len() * 16);
    for part in parts {
        digests.extend_from_slice(&Md5::digest(part));
    }
    format!("\"{}-{}\"", md5_hex(&digests), parts.len())
}

/// base64 of a checksum of `data` as the `x-amz-checksum-<name>` header carries it;
/// `name` is crc32, crc32c, crc64nvme, sha1 or sha256.
pub fn checksum_base64(name: &str, data: &[u8]) -> String {
    let algorithm: aws_smithy_checksums::ChecksumAlgorithm = name.parse().expect("known checksum algorithm");
    let mut checksum = algorithm.into_impl();
    checksum.update(data);
    aws_smithy_types::base64::encode(&checksum.finalize()[..])
}

/// Asserts two byte strings are equal without printing megabytes when they are not.
#[track_caller]
pub fn assert_bytes_eq(actual: &[u8], expected: &[u8], context: &str) {
    if actual == expected {
        return;
    }
    let first_difference =
        actual.iter().zip(expected.iter()).position(|(a, b)| a != b).unwrap_or(actual.len().min(expected.len()));
    panic!(
        "{context}: bytes differ: got {} bytes (md5 {}), expected {} bytes (md5 {}); first difference at offset {first_difference}",
        actual.len(),
        md5_hex(actual),
        expected.len(),
        md5_hex(expected)
    );
}

/// Percent-encodes everything but RFC 3986 unreserved characters (and `/` if `keep_slash`).
pub fn percent_encode(text: &str, keep_slash: bool) -> String {
    let mut out = String::with_capacity(text.len() * 3);
    for byte in text.bytes() {
        let unreserved = byte.is_ascii_alphanumeric() || matches!(byte, b'-' | b'.' | b'_' | b'~');
        if unreserved || (keep_slash && byte == b'/') {
            out.push(byte as char);
        } else {
            let _ = write!(out, "%{byte:02X}");
        }
    }
    out
}

/// Decodes %XX and, like form decoding (boto3's unquote_plus), `+` as space.
pub fn url_decode_plus(text: &str) -> String {
    let bytes = text.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        match bytes[i] {
            b'+' => {
                out.push(b' ');
                i += 1;
            }
            b'%' if i + 2 < bytes.len() => {
                let hex = std::str::from_utf8(&bytes[i + 1..i + 3]).unwrap_or("zz");
                match u8::from_str_radix(hex, 16) {
                    Ok(value) => {
                        out.push(value);
                        i += 3;
                    }
                    Err(_) => {
                        out.push(b'%');
                        i += 1;
                    }
                }
            }
            other => {
                out.push(other);
                i += 1;
            }
        }
    }
    String::from_utf8_lossy(&out).into_owned()
}

pub fn authority_of(url: &str) -> &str {
    let rest = url.split_once("://").map(|(_, r)| r).unwrap_or(url);
    rest.split(['/', '?']).next().unwrap_or(rest)
}

pub fn path_and_query_of(url: &str) -> &str {
    let rest = url.split_once("://").map(|(_, r)| r).unwrap_or(url);
    match rest.find(['/', '?']) {
        Some(index) if rest.as_bytes()[index] == b'/' => &rest[index..],
        Some(_) | None => "/",
    }
}

/// Text between the first `<tag>` and `</tag>`.
pub fn xml_value(xml: &str, tag: &str) -> Option<String> {
    let open = format!("<{tag}>");
    let close = format!("</{tag}>");
    let start = xml.find(&open)? + open.len();
    let end = xml[start..].find(&close)? + start;
    Some(xml[start..end].to_owned())
}

// ---------------------------------------------------------------- SigV4 for raw requests

/// What the signature covers of the body.
pub enum Payload<'a> {
    /// The body's sha256 goes into x-amz-content-sha256.
    Bytes(&'a [u8]),
    /// `UNSIGNED-PAYLOAD`.
    Unsigned,
    /// `STREAMING-UNSIGNED-PAYLOAD-TRAILER` (aws-chunked body with a trailing checksum).
    UnsignedTrailer,
    /// `STREAMING-AWS4-HMAC-SHA256-PAYLOAD`: an aws-chunked body whose every chunk is signed,
    /// chained from the request's own signature (`aws_chunked_signed`).
    StreamingSigned,
}

pub fn sign_request(
    region: &str,
    keys: &Keys,
    time: SystemTime,
    method: &str,
    url: &str,
    headers: &[(&str, &str)],
    payload: Payload<'_>,
) -> Vec<(String, String)> {
    use aws_sigv4::http_request::{
        PayloadChecksumKind, PercentEncodingMode, SignableBody, SignableRequest, SigningSettings,
        UriPathNormalizationMode, sign,
    };
    use aws_sigv4::sign::v4;

    let identity =
        Credentials::new(keys.access_key.clone(), keys.secret_key.clone(), None, None, "ignifuge-e2e").into();
    let mut settings = SigningSettings::default();
    // S3 signs the path as sent (single encoding, no normalisation) and wants the payload hash header.
    settings.percent_encoding_mode = PercentEncodingMode::Single;
    settings.uri_path_normalization_mode = UriPathNormalizationMode::Disabled;
    settings.payload_checksum_kind = PayloadChecksumKind::XAmzSha256;
    let params = v4::SigningParams::builder()
        .identity(&identity)
        .region(region)
        .name("s3")
        .time(time)
        .settings(settings)
        .build()
        .expect("signing params")
        .into();

    let authority = authority_of(url).to_owned();
    let mut all_headers: Vec<(&str, &str)> = Vec::new();
    if !headers.iter().any(|(k, _)| k.eq_ignore_ascii_case("host")) {
        all_headers.push(("host", authority.as_str()));
    }
    all_headers.extend(headers.iter().copied());
    let body = match payload {
        Payload::Bytes(bytes) => SignableBody::Bytes(bytes),
        Payload::Unsigned => SignableBody::UnsignedPayload,
        Payload::UnsignedTrailer => SignableBody::StreamingUnsignedPayloadTrailer,
        Payload::StreamingSigned => SignableBody::Precomputed("STREAMING-AWS4-HMAC-SHA256-PAYLOAD".into()),
    };
    let signable = SignableRequest::new(method, url, all_headers.iter().copied(), body).expect("signable request");
    let (instructions, _signature) = sign(signable, &params).expect("SigV4 signing").into_parts();
    let mut out: Vec<(String, String)> = all_headers.iter().map(|(k, v)| (k.to_string(), v.to_string())).collect();
    for (name, value) in instructions.headers() {
        out.retain(|(k, _)| !k.eq_ignore_ascii_case(name));
        out.push((name.to_owned(), value.to_owned()));
    }
    out
}

/// A header of a request signed by `sign_request`.
fn signed_header<'a>(signed: &'a [(String, String)], name: &str) -> &'a str {
    signed.iter().find(|(k, _)| k.eq_ignore_ascii_case(name)).map(|(_, v)| v.as_str()).expect("a signed header")
}

/// The length of `aws_chunked_signed`'s body for `data_len` bytes in chunks of `chunk_size`
/// (signatures are 64 hex digits whatever they say): the request's signed Content-Length.
pub fn aws_chunked_signed_len(data_len: usize, chunk_size: usize) -> usize {
    let frame = |len: usize| format!("{len:x};chunk-signature=").len() + 64 + 2 + len + 2;
    let full = data_len / chunk_size;
    let rest = data_len % chunk_size;
    full * frame(chunk_size) + if rest > 0 { frame(rest) } else { 0 } + frame(0)
}

/// An aws-chunked body of `data` signed chunk by chunk (SigV4 streaming, as minio-go and the Java
/// SDK send over plain HTTP) for the request `signed` (`sign_request` with
/// `Payload::StreamingSigned` by `keys` at `time`): each chunk's signature chains from the one
/// before, the first from the request's own, and a last empty chunk ends it.
pub fn aws_chunked_signed(
    region: &str,
    keys: &Keys,
    time: SystemTime,
    signed: &[(String, String)],
    data: &[u8],
    chunk_size: usize,
) -> Vec<u8> {
    use aws_sigv4::sign::v4::{calculate_signature, generate_signing_key};
    let sha256_hex = |bytes: &[u8]| {
        let algorithm: aws_smithy_checksums::ChecksumAlgorithm = "sha256".parse().expect("sha256");
        let mut hash = algorithm.into_impl();
        hash.update(bytes);
        hash.finalize().iter().map(|b| format!("{b:02x}")).collect::<String>()
    };
    let key = generate_signing_key(&keys.secret_key, time, region, "s3");
    let amz_date = signed_header(signed, "x-amz-date");
    let scope = format!("{}/{region}/s3/aws4_request", &amz_date[..8]);
    let empty = sha256_hex(b"");
    let authorization = signed_header(signed, "authorization");
    let mut previous = authorization.rsplit("Signature=").next().expect("a signature").to_owned();
    let mut out = Vec::new();
    for chunk in data.chunks(chunk_size).chain(std::iter::once(&[][..])) {
        let to_sign =
            format!("AWS4-HMAC-SHA256-PAYLOAD\n{amz_date}\n{scope}\n{previous}\n{empty}\n{}", sha256_hex(chunk));
        let signature = calculate_signature(key.as_ref(), to_sign.as_bytes());
        out.extend_from_slice(format!("{:x};chunk-signature={signature}\r\n", chunk.len()).as_bytes());
        out.extend_from_slice(chunk);
        out.extend_from_slice(b"\r\n");
        previous = signature;
    }
    out
}

// ---------------------------------------------------------------- raw HTTP/1.1 client

#[derive(Debug, Clone)]
pub struct RawResponse {
    pub status: u16,
    pub headers: Vec<(String, String)>,
    pub body: Vec<u8>,
}

impl RawResponse {
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers.iter().find(|(k, _)| k.eq_ignore_ascii_case(name)).map(|(_, v)| v.as_str())
    }

    pub fn body_text(&self) -> String {
        String::from_utf8_lossy(&self.body).into_owned()
    }

    /// `<Code>` of an S3 error body.
    pub fn error_code(&self) -> Option<String> {
        xml_value(&self.body_text(), "Code")
    }

    /// Short description for assertion messages (status, code, first bytes of the body).
    pub fn summary(&self) -> String {
        let text = self.body_text();
        let shown: String = text.chars().take(600).collect();
        format!("HTTP {} body: {shown}", self.status)
    }
}

/// A PutObject in progress whose body is sent by the test, piece by piece.
pub struct SlowUpload {
    stream: TcpStream,
}

impl SlowUpload {
    pub async fn send(&mut self, piece: &[u8]) {
        let sent = async {
            self.stream.write_all(piece).await?;
            self.stream.flush().await
        }
        .await;
        if let Err(e) = sent {
            // The server answered before the body was whole and closed: its answer says why.
            let answer = tokio::time::timeout(Duration::from_secs(5), read_response(&mut self.stream, false)).await;
            panic!("sending a piece of the body: {e}; the server's answer: {answer:?}");
        }
    }

    /// Sends `piece` every `every` (so the body is never idle) until the server answers, for at
    /// most `limit`: the answer, or None if none came.
    pub async fn trickle_until_answered(
        mut self,
        piece: &[u8],
        every: Duration,
        limit: Duration,
    ) -> Option<RawResponse> {
        let deadline = Instant::now() + limit;
        loop {
            tokio::select! {
                ready = self.stream.readable() => {
                    ready.ok()?;
                    return tokio::time::timeout(RAW_HTTP_TIMEOUT, read_response(&mut self.stream, false)).await.ok()?.ok();
                }
                () = tokio::time::sleep(every) => {
                    if Instant::now() >= deadline {
                        return None;
                    }
                    // The server may have stopped reading: its answer is what counts.
                    let _ = self.stream.write_all(piece).await;
                }
            }
        }
    }

    /// Sends the rest of the body and reads the response.
    pub async fn finish(mut self, rest: &[u8]) -> RawResponse {
        self.send(rest).await;
        tokio::time::timeout(RAW_HTTP_TIMEOUT, read_response(&mut self.stream, false))
            .await
            .expect("a response to the upload in time")
            .expect("a readable response to the upload")
    }
}

/// Sends one request on a fresh connection (`Connection: close`) and reads the response.
/// Adds Host (= `addr`) and Content-Length when the caller gave none.
pub async fn raw_request(
    addr: &str,
    method: &str,
    path_and_query: &str,
    headers: &[(String, String)],
    body: &[u8],
) -> anyhow::Result<RawResponse> {
    let head = build_request_head(addr, method, path_and_query, headers, Some(body.len()));
    tokio::time::timeout(RAW_HTTP_TIMEOUT, async {
        let mut stream = TcpStream::connect(addr).await?;
        stream.write_all(head.as_bytes()).await?;
        stream.write_all(body).await?;
        stream.flush().await?;
        read_response(&mut stream, method == "HEAD").await
    })
    .await
    .map_err(|_| anyhow::anyhow!("no complete response within {RAW_HTTP_TIMEOUT:?}"))?
}

/// Request line and headers, ending with the blank line.
pub fn build_request_head(
    addr: &str,
    method: &str,
    path_and_query: &str,
    headers: &[(String, String)],
    content_length: Option<usize>,
) -> String {
    let has = |name: &str| headers.iter().any(|(k, _)| k.eq_ignore_ascii_case(name));
    let mut head = format!("{method} {path_and_query} HTTP/1.1\r\n");
    if !has("host") {
        let _ = write!(head, "Host: {addr}\r\n");
    }
    for (name, value) in headers {
        let _ = write!(head, "{name}: {value}\r\n");
    }
    if let Some(length) = content_length
        && !has("content-length")
        && !has("transfer-encoding")
        && (length > 0 || method == "PUT" || method == "POST")
    {
        let _ = write!(head, "Content-Length: {length}\r\n");
    }
    if !has("connection") {
        head.push_str("Connection: close\r\n");
    }
    head.push_str("\r\n");
    head
}

struct ResponseReader<'a> {
    stream: &'a mut TcpStream,
    buffer: Vec<u8>,
    position: usize,
}

impl ResponseReader<'_> {
    async fn fill(&mut self) -> anyhow::Result<bool> {
        let mut chunk = [0u8; 64 * 1024];
        let n = self.stream.read(&mut chunk).await?;
        self.buffer.extend_from_slice(&chunk[..n]);
        Ok(n > 0)
    }

    async fn line(&mut self) -> anyhow::Result<String> {
        loop {
            if let Some(index) = self.buffer[self.position..].windows(2).position(|w| w == b"\r\n") {
                let line = String::from_utf8_lossy(&self.buffer[self.position..self.position + index]).into_owned();
                self.position += index + 2;
                return Ok(line);
            }
            anyhow::ensure!(self.fill().await?, "connection closed in the middle of a line");
        }
    }

    async fn exact(&mut self, n: usize) -> anyhow::Result<Vec<u8>> {
        while self.buffer.len() - self.position < n {
            anyhow::ensure!(
                self.fill().await?,
                "connection closed after {} of {n} body bytes",
                self.buffer.len() - self.position
            );
        }
        let out = self.buffer[self.position..self.position + n].to_vec();
        self.position += n;
        Ok(out)
    }

    async fn rest(&mut self) -> anyhow::Result<Vec<u8>> {
        while self.fill().await? {}
        let out = self.buffer[self.position..].to_vec();
        self.position = self.buffer.len();
        Ok(out)
    }
}

/// Reads one HTTP/1.1 response (skipping 1xx), body by Content-Length, chunked, or to EOF.
pub async fn read_response(stream: &mut TcpStream, is_head: bool) -> anyhow::Result<RawResponse> {
    let mut reader = ResponseReader { stream, buffer: Vec::new(), position: 0 };
    loop {
        let status_line = reader.line().await?;
        let mut parts = status_line.splitn(3, ' ');
        let version = parts.next().unwrap_or_default();
        anyhow::ensure!(version.starts_with("HTTP/1."), "not an HTTP/1.x status line: {status_line:?}");
        let status: u16 = parts
            .next()
            .and_then(|s| s.parse().ok())
            .ok_or_else(|| anyhow::anyhow!("bad status line {status_line:?}"))?;
        let mut headers = Vec::new();
        loop {
            let line = reader.line().await?;
            if line.is_empty() {
                break;
            }
            if let Some((name, value)) = line.split_once(':') {
                headers.push((name.trim().to_owned(), value.trim().to_owned()));
            }
        }
        if (100..200).contains(&status) {
            continue;
        }
        let header = |name: &str| {
            headers.iter().find(|(k, _): &&(String, String)| k.eq_ignore_ascii_case(name)).map(|(_, v)| v.clone())
        };
        let body = if is_head || status == 204 || status == 304 {
            Vec::new()
        } else if header("transfer-encoding").is_some_and(|v| v.to_ascii_lowercase().contains("chunked")) {
            let mut body = Vec::new();
            loop {
                let size_line = reader.line().await?;
                let size_text = size_line.split(';').next().unwrap_or("").trim();
                let size = usize::from_str_radix(size_text, 16)
                    .map_err(|e| anyhow::anyhow!("bad chunk size {size_line:?}: {e}"))?;
                if size == 0 {
                    // Trailers, then the empty line.
                    while !reader.line().await?.is_empty() {}
                    break;
                }
                body.extend(reader.exact(size).await?);
                reader.line().await?;
            }
            body
        } else if let Some(length) = header("content-length") {
            let length: usize = length.parse()?;
            reader.exact(length).await?
        } else {
            reader.rest().await?
        };
        return Ok(RawResponse { status, headers, body });
    }
}

/// A request whose head and the start of its body are on the wire, the rest still to come: a
/// slow upload the server has already started to handle (authenticated, bucket looked up).
pub struct InFlightRequest {
    stream: TcpStream,
    is_head: bool,
}

impl InFlightRequest {
    /// Connects to `addr` and sends `head` (see `build_request_head`) and `first_part` of the body.
    pub async fn start(addr: &str, head: &str, first_part: &[u8]) -> anyhow::Result<InFlightRequest> {
        let mut stream = TcpStream::connect(addr).await?;
        stream.write_all(head.as_bytes()).await?;
        stream.write_all(first_part).await?;
        stream.flush().await?;
        Ok(InFlightRequest { stream, is_head: head.starts_with("HEAD ") })
    }

    /// Sends the rest of the body and reads the response (bounded by RAW_HTTP_TIMEOUT).
    pub async fn finish(mut self, rest: &[u8]) -> anyhow::Result<RawResponse> {
        tokio::time::timeout(RAW_HTTP_TIMEOUT, async {
            self.stream.write_all(rest).await?;
            self.stream.flush().await?;
            read_response(&mut self.stream, self.is_head).await
        })
        .await
        .map_err(|_| anyhow::anyhow!("no complete response within {RAW_HTTP_TIMEOUT:?}"))?
    }
}

/// Sends `head` and `body_part` then closes the write half, as a client that dies mid-upload.
/// Returns the server's response if it sent one before closing.
pub async fn send_truncated(addr: &str, head: &str, body_part: &[u8]) -> Option<RawResponse> {
    let mut stream = TcpStream::connect(addr).await.unwrap_or_else(|e| panic!("connect {addr}: {e}"));
    stream.write_all(head.as_bytes()).await.expect("write head");
    stream.write_all(body_part).await.expect("write partial body");
    stream.flush().await.expect("flush");
    stream.shutdown().await.expect("shutdown write half");
    match tokio::time::timeout(Duration::from_secs(30), read_response(&mut stream, false)).await {
        Ok(Ok(response)) => Some(response),
        Ok(Err(_)) | Err(_) => None,
    }
}
