//! `ignifuge admin`: tenants and access keys, applied to the metadata of a running cluster.

use crate::daemons::read_secret;
use anyhow::Context as _;
use clap::{Args, Subcommand};
use ignifuge_meta::{AccessKeyRecord, Command, MetaError, Metadata as _, RecordView, RepairReport, TenantRecord};
use ignifuge_raft::{DigestAt, RaftStatus, StateDigest};
use ignifuge_rpc::RemoteMetadata;
use ignifuge_rpc::{ClusterConfig, InternodeAuth, MetadataMargin, NodeClient, ScrubStatus, SecretSealer};
use ignifuge_services::agreement::DigestsAtIndex;
use ignifuge_types::time::now_ms;
use ignifuge_types::{AccessKeyId, BucketName, LayoutVersion, NodeId, TenantId, UserId, WebDomain};
use rand::Rng as _;
use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};
use std::sync::Arc;

#[derive(Args)]
pub struct AdminArgs {
    /// The cluster's data directory (holds cluster.toml and cluster.secret).
    #[arg(long, default_value = "./ignifuge-data")]
    data_dir: PathBuf,
    #[command(subcommand)]
    command: AdminCommand,
}

#[derive(Subcommand)]
enum AdminCommand {
    /// Tenants.
    Tenant {
        #[command(subcommand)]
        command: TenantCommand,
    },
    /// Access keys.
    Key {
        #[command(subcommand)]
        command: KeyCommand,
    },
    /// Per tenant: objects and bytes at each remaining margin, durability debt, the repair queue
    /// with its rate and ETA, and the time since each node's last complete scrub.
    Durability {
        #[arg(long)]
        json: bool,
        /// Print the figures as Prometheus gauges (text format, for a textfile collector).
        #[arg(long, conflicts_with = "json")]
        prometheus: bool,
    },
    /// Storage nodes: declare a dead node out (its shards are rebuilt now), or take it back.
    Node {
        #[command(subcommand)]
        command: NodeCommand,
    },
    /// The metadata group: voters and learners, the leader and its datacenter, log and applied
    /// indexes, each member's lag behind the leader.
    Status {
        #[arg(long)]
        json: bool,
    },
    /// Each metadata replica's applied index and the BLAKE3 digest of its whole state there:
    /// replicas at the same index must print the same digest (a check of snapshots and
    /// replication; reads every key of every replica).
    Digest {
        #[arg(long)]
        json: bool,
        /// Compare every replica's state right after one log index instead, chosen just past
        /// the longest log (reached with no-op lease entries if the cluster is idle), so that
        /// replicas can be compared while clients write. Exits with an error when any replica's
        /// digest differs from the others', or when any gave none (down, behind, still hashing
        /// at the deadline): then nothing was proved of it.
        #[arg(long)]
        agree: bool,
        /// With --agree: how long replicas are given to reach the index and hash their state
        /// there. Each reads its whole state: about 4 s of a core per million objects of 1 MiB
        /// (docs/benchmarks.md "The state digest"); nine replicas of 10 million 16-byte objects
        /// sharing two cores took 66 s.
        #[arg(long, requires = "agree", default_value_t = 120, value_parser = clap::value_parser!(u64).range(1..=86_400))]
        timeout_secs: u64,
    },
    /// The cluster layout stored in the metadata: show it, or replace it.
    Layout {
        #[command(subcommand)]
        command: LayoutCommand,
    },
    /// Custom website domains: a tenant attaches a host name to one of its buckets, and the
    /// website endpoint serves the bucket's site under it. A domain belongs to one tenant at a
    /// time.
    Domain {
        #[command(subcommand)]
        command: DomainCommand,
    },
    /// A metadata record as stored (one `durability` names as unreadable, say): its bytes (text
    /// where they are UTF-8, else hex) and whether it reads as the background scans read it.
    /// KEY is the stored key, as `durability` prints it; a version key's NUL byte (which no shell
    /// argument can hold) is written `\0` or `\u0000` (so a key holding a backslash then `0` or
    /// `u0000` itself cannot be named).
    Record {
        key: String,
        #[arg(long)]
        json: bool,
    },
}

#[derive(Subcommand)]
enum DomainCommand {
    /// Serve BUCKET's website under DOMAIN (for the bucket's tenant).
    Attach { domain: String, bucket: String },
    /// Stop serving DOMAIN.
    Detach {
        domain: String,
        #[arg(long)]
        tenant: String,
    },
    /// The domains of a tenant's buckets.
    List {
        #[arg(long)]
        tenant: String,
    },
}

#[derive(Subcommand)]
enum LayoutCommand {
    /// Print the stored layout (TOML, the format of cluster.toml) and its version.
    Show {
        #[arg(long)]
        json: bool,
    },
    /// Replace the stored layout with a file's (same format). Nodes may be added and change
    /// address or weight, metadata voters and learners may change (the metadata group follows:
    /// new members catch up as learners, then voters are swapped by joint consensus); the storage
    /// class and its geometry stay, and a node leaves only after it was drained.
    Apply { file: PathBuf },
}

#[derive(Subcommand)]
enum NodeCommand {
    /// The node is dead for good: rebuild its shards elsewhere now instead of after the down-out
    /// interval (10 min). A node that still answers is surveyed like any other (its shards are
    /// not rebuilt, and it cannot leave the layout): stop it first. A replacement started under
    /// the same id is refilled by the repair service whether or not the node was declared out.
    Out { node: String },
    /// Take an `out` declaration back (the node is expected to return with its disks).
    In { node: String },
}

#[derive(Subcommand)]
enum TenantCommand {
    /// Create a tenant and a first access key for it; prints the key as shell exports.
    Create { name: String },
    /// The tenant-wide Block Public Access settings (AWS's account-level ones), which apply to
    /// every bucket of the tenant on top of the bucket's own: `on` turns all four on, `off`
    /// clears them, or name the ones to turn on.
    PublicAccessBlock {
        name: String,
        /// on | off | a comma-separated list of block-public-acls, ignore-public-acls,
        /// block-public-policy, restrict-public-buckets.
        setting: String,
    },
}

#[derive(Subcommand)]
enum KeyCommand {
    /// Create an access key for an existing tenant; prints it as shell exports.
    Create {
        #[arg(long)]
        tenant: String,
    },
    /// Revoke an access key: every gateway refuses requests signed with it (InvalidAccessKeyId),
    /// presigned URLs and form policies included, within `KEY_CACHE_TTL_MS` (10 s).
    Delete { access_key_id: String },
}

/// One metadata member, as `ignifuge admin status` reports it.
pub struct MemberStatus {
    pub node: String,
    pub datacenter: String,
    /// "voter" or "learner", as the layout names it.
    pub role: &'static str,
    pub status: Result<RaftStatus, String>,
}

/// A freshly made access key, printed once and stored only sealed.
pub struct NewKey {
    pub access_key_id: String,
    pub secret_access_key: String,
}

/// Talks to the metadata of a cluster described by a data directory.
pub struct Admin {
    client: NodeClient,
    cluster: ClusterConfig,
    metadata: RemoteMetadata,
    sealer: SecretSealer,
}

fn random_string(alphabet: &[u8], len: usize) -> String {
    let mut rng = rand::rng();
    (0..len).map(|_| alphabet[rng.random_range(0..alphabet.len())] as char).collect()
}

impl Admin {
    pub fn open(data_dir: &Path) -> anyhow::Result<Self> {
        let cluster = ClusterConfig::load(&data_dir.join("cluster.toml"))?;
        let secret = read_secret(&data_dir.join("cluster.secret"))?;
        let client = NodeClient::new(Arc::new(InternodeAuth::new(&secret)));
        let voters = cluster.voters().into_iter().map(|(_, n)| n.address).collect();
        let metadata = RemoteMetadata::new(client.clone(), voters);
        Ok(Self { client, cluster, metadata, sealer: SecretSealer::new(&secret) })
    }

    /// Creates the metadata group of a brand-new cluster (its voters) and stores the file's
    /// layout, with its geometry pinned, as layout version 1. Every voter is initialised with
    /// the same first membership, so none of them starts "unproven" (a replica that starts
    /// without a log does not vote until it has caught up). Learners join once the leader reads
    /// the layout.
    ///
    /// Only a group that does not exist yet is created: if any voter already holds a log, none
    /// is initialised (the layout is still stored if it is not yet). Initialising a voter whose disk was wiped would give it a first entry of
    /// its own and clear its unproven mark, letting it vote with none of the acknowledged
    /// entries it lost; such a voter rejoins by catching up from the leader instead.
    pub async fn initialize_metadata(&self) -> anyhow::Result<()> {
        let voters: BTreeMap<u64, String> =
            self.cluster.voters().into_iter().map(|(id, n)| (id, n.address.to_string())).collect();
        anyhow::ensure!(!voters.is_empty(), "no metadata voters");
        self.cluster.check_metadata_margin()?;
        let mut exists = false;
        for (_, voter) in self.cluster.voters() {
            let status: RaftStatus = self
                .client
                .post_json(voter.address, ignifuge_raft::paths::STATUS, &())
                .await
                .with_context(|| format!("asking {} whether the metadata group exists", voter.id))?;
            if status.last_log_index.is_some() {
                tracing::info!(voter = %voter.id, "the metadata group exists already; no voter is initialised");
                exists = true;
                break;
            }
        }
        for (_, voter) in self.cluster.voters().into_iter().filter(|_| !exists) {
            let _: serde_json::Value = self
                .client
                .post_json(voter.address, ignifuge_raft::paths::INITIALIZE, &voters)
                .await
                .with_context(|| format!("initialising the metadata replica on {}", voter.id))?;
        }
        let document = self.cluster.clone().pinned()?.to_toml();
        match self.metadata.set_layout(None, document, now_ms()).await {
            Ok(_) | Err(MetaError::Superseded(_)) => Ok(()),
            Err(e) => Err(e).context("storing the cluster layout"),
        }
    }

    /// The stored layout and its version, or the file's when none is stored.
    pub async fn layout(&self) -> anyhow::Result<(Option<LayoutVersion>, ClusterConfig)> {
        match self.metadata.layout().await? {
            Some(record) => {
                let config = ClusterConfig::parse(&record.document)
                    .with_context(|| format!("the stored layout (version {})", record.version))?;
                Ok((Some(record.version), config))
            }
            None => Ok((None, self.cluster.clone())),
        }
    }

    /// Replaces the stored layout with `next` (geometry kept), by compare-and-swap on the version
    /// that was checked.
    pub async fn apply_layout(&self, next: ClusterConfig) -> anyhow::Result<LayoutVersion> {
        let (version, current) = self.layout().await?;
        let next = ClusterConfig { geometry: current.geometry.or(Some(current.class_geometry()?)), ..next };
        let nodes_out = self.metadata.nodes_out().await?;
        let report = self.metadata.repair_report().await?;
        let debt_stripes = self.metadata.durability_report().await?.iter().map(|t| t.debt_stripes).sum();
        // A node that answers now may have taken writes since the round counted it lost.
        let mut nodes_out_and_silent = Vec::new();
        for (node, since_ms) in nodes_out {
            let answers = match current.node(&node) {
                Some(endpoint) => self.client.health(endpoint.address).await,
                None => false,
            };
            if !answers {
                nodes_out_and_silent.push((node, since_ms));
            }
        }
        current.check_change(&next, &drained_nodes(&nodes_out_and_silent, report.as_ref(), debt_stripes))?;
        next.check_metadata_margin()?;
        let document = next.to_toml();
        Ok(self.metadata.set_layout(version, document, now_ms()).await?)
    }

    pub async fn tenant_exists(&self, name: &str) -> anyhow::Result<bool> {
        match self.metadata.tenant(TenantId::new(name)).await {
            Ok(_) => Ok(true),
            Err(MetaError::NoSuchTenant) => Ok(false),
            Err(e) => Err(e.into()),
        }
    }

    pub async fn create_tenant(&self, name: &str) -> anyhow::Result<()> {
        anyhow::ensure!(
            !name.is_empty()
                && name.len() <= 64
                && name.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_'),
            "tenant names are 1-64 letters, digits, '-' or '_'"
        );
        self.metadata
            .apply(Command::CreateTenant(TenantRecord {
                id: TenantId::new(name),
                created_ms: now_ms(),
                public_access_block: None,
            }))
            .await
            .with_context(|| format!("creating tenant {name}"))?;
        Ok(())
    }

    pub async fn create_key(&self, tenant: &str) -> anyhow::Result<NewKey> {
        let access_key_id = format!("IGN{}", random_string(b"ABCDEFGHIJKLMNOPQRSTUVWXYZ234567", 17));
        let secret_access_key = random_string(b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/", 40);
        let record = AccessKeyRecord {
            access_key_id: AccessKeyId::new(access_key_id.clone()),
            tenant: TenantId::new(tenant),
            user: UserId::new("admin"),
            sealed_secret: self.sealer.seal(&access_key_id, &secret_access_key),
            created_ms: now_ms(),
        };
        self.metadata
            .apply(Command::CreateAccessKey(record))
            .await
            .with_context(|| format!("creating a key for tenant {tenant}"))?;
        Ok(NewKey { access_key_id, secret_access_key })
    }

    pub async fn durability(&self) -> anyhow::Result<crate::durability::DurabilityView> {
        let written = self.metadata.durability_report().await?;
        let repair = self.metadata.repair_report().await?;
        // A stored layout this version cannot parse is a problem to list, not a reason to say
        // nothing of the rest: the file's nodes are asked instead.
        let (layout, layout_unreadable) = match self.metadata.layout().await? {
            Some(record) => match ClusterConfig::parse(&record.document) {
                Ok(layout) => (layout, None),
                Err(e) => (self.cluster.clone(), Some(format!("version {}: {e:#}", record.version))),
            },
            None => (self.cluster.clone(), None),
        };
        let mut scrub = Vec::new();
        for node in &layout.nodes {
            let status = self
                .client
                .post_json::<_, ScrubStatus>(node.address, ignifuge_rpc::paths::SCRUB_STATUS, &())
                .await
                .map_err(|e| e.to_string());
            scrub.push((node.id.clone(), status));
        }
        // The metadata members among the nodes that answered (one that did not is named as
        // unreachable already), asked together: whose replica its store has stopped.
        let answered: BTreeSet<&NodeId> = scrub.iter().filter(|(_, s)| s.is_ok()).map(|(n, _)| n).collect();
        let members = layout.voters().into_iter().chain(layout.learners()).map(|(_, node)| node);
        let asked = members.filter(|node| answered.contains(&node.id)).map(|node| async move {
            let status = self.client.post_json::<_, RaftStatus>(node.address, ignifuge_raft::paths::STATUS, &()).await;
            status.is_ok_and(|s| s.stopped).then(|| node.id.0.clone())
        });
        let stopped = futures::future::join_all(asked).await.into_iter().flatten().collect();
        Ok(crate::durability::DurabilityView::assess(written, repair, scrub, now_ms())
            .with_stopped_replicas(stopped)
            .with_unreadable_layout(layout_unreadable))
    }

    pub async fn set_node_out(&self, node: &str, out: bool) -> anyhow::Result<()> {
        let id = ignifuge_types::NodeId::new(node);
        anyhow::ensure!(self.layout().await?.1.node(&id).is_some(), "no node {node} in the cluster layout");
        self.metadata.apply(Command::SetNodeOut { node: id, out, now_ms: now_ms() }).await?;
        Ok(())
    }

    /// Every metadata member's applied index and state digest.
    pub async fn digests(&self) -> Vec<(String, Result<StateDigest, String>)> {
        let layout = match self.layout().await {
            Ok((_, layout)) => layout,
            Err(_) => self.cluster.clone(),
        };
        let mut out = Vec::new();
        for (_, node) in layout.voters().into_iter().chain(layout.learners()) {
            let digest = self
                .client
                .post_json::<_, StateDigest>(node.address, ignifuge_raft::paths::DIGEST, &())
                .await
                .map_err(|e| e.to_string());
            out.push((node.id.0.clone(), digest));
        }
        out
    }

    /// Every metadata member's digest of its state right after one log index, replicas given
    /// `timeout` to reach it and hash their state (`ignifuge_services::agreement`).
    pub async fn digests_at_one_index(&self, timeout: std::time::Duration) -> anyhow::Result<DigestsAtIndex> {
        let layout = match self.layout().await {
            Ok((_, layout)) => layout,
            Err(_) => self.cluster.clone(),
        };
        let members = ignifuge_services::agreement::members(&layout);
        Ok(ignifuge_services::agreement::digests_at_one_index(&self.metadata, &self.client, &members, timeout).await?)
    }

    /// Every metadata member's own view of the group (voters, then learners, as the stored
    /// layout names them; the file's when the metadata cannot be read); unreachable members are
    /// reported as such.
    pub async fn status(&self) -> (Vec<MemberStatus>, MetadataMargin) {
        let layout = match self.layout().await {
            Ok((_, layout)) => layout,
            Err(_) => self.cluster.clone(),
        };
        let margin = layout.metadata_margin(layout.default_class);
        let mut out = Vec::new();
        let members = layout.voters().into_iter().map(|m| ("voter", m));
        for (role, (_, node)) in members.chain(layout.learners().into_iter().map(|m| ("learner", m))) {
            let status = self
                .client
                .post_json::<_, RaftStatus>(node.address, ignifuge_raft::paths::STATUS, &())
                .await
                .map_err(|e| e.to_string());
            out.push(MemberStatus { node: node.id.0.clone(), datacenter: node.datacenter.0.clone(), role, status });
        }
        (out, margin)
    }
}

/// Nodes that may leave the layout: declared out (and not answering now: `apply_layout`), and a
/// repair round that started after the
/// declaration counted the node's shards as lost from its start (`nodes_down_all_round`: it did
/// not answer; a node still running is surveyed like any other, its shards present, so it is
/// never drained) and yet found every stripe at its full budget with none waiting or unreadable,
/// and could read every record (a blob it could not read was not surveyed); and no stripe is
/// recorded as durability debt (`debt_stripes`: a write made while the node was down may have
/// left a shard missing after the round's scan passed it). So no stripe counts on them any more.
fn drained_nodes(nodes_out: &[(NodeId, i64)], report: Option<&RepairReport>, debt_stripes: u64) -> BTreeSet<NodeId> {
    let Some(report) = report else {
        return BTreeSet::new();
    };
    let clean = report.stripes_below_budget == 0
        && report.stripes_waiting == 0
        && report.stripes_unreadable == 0
        && report.records_unreadable == 0
        && debt_stripes == 0;
    nodes_out
        .iter()
        .filter(|(node, since_ms)| clean && report.started_ms > *since_ms && report.nodes_down_all_round.contains(node))
        .map(|(n, _)| n.clone())
        .collect()
}

fn print_key(key: &NewKey) {
    println!("export AWS_ACCESS_KEY_ID={}", key.access_key_id);
    println!("export AWS_SECRET_ACCESS_KEY={}", key.secret_access_key);
}

pub async fn run(args: AdminArgs) -> anyhow::Result<()> {
    let admin = Admin::open(&args.data_dir)?;
    match args.command {
        AdminCommand::Tenant { command: TenantCommand::Create { name } } => {
            admin.create_tenant(&name).await?;
            print_key(&admin.create_key(&name).await?);
        }
        AdminCommand::Tenant { command: TenantCommand::PublicAccessBlock { name, setting } } => {
            let block = parse_public_access_block(&setting)?;
            let command = Command::SetTenantPublicAccessBlock { tenant: TenantId::new(&name), block };
            admin.metadata.apply(command).await.with_context(|| format!("tenant {name}"))?;
            println!("tenant {name}: public access block {}", block.map_or("cleared".into(), |b| format!("{b:?}")));
        }
        AdminCommand::Domain { command: DomainCommand::Attach { domain, bucket } } => {
            let record =
                admin.metadata.bucket(BucketName::new(&bucket)).await.with_context(|| format!("bucket {bucket}"))?;
            let command = Command::SetDomain {
                domain: WebDomain::new(domain.to_ascii_lowercase()),
                tenant: record.tenant.clone(),
                bucket: Some(record.reference()),
            };
            admin.metadata.apply(command).await.with_context(|| format!("attaching {domain}"))?;
            println!("{domain} serves the website of bucket {bucket} (tenant {})", record.tenant);
        }
        AdminCommand::Domain { command: DomainCommand::Detach { domain, tenant } } => {
            let command = Command::SetDomain {
                domain: WebDomain::new(domain.to_ascii_lowercase()),
                tenant: TenantId::new(tenant),
                bucket: None,
            };
            admin.metadata.apply(command).await.with_context(|| format!("detaching {domain}"))?;
            println!("{domain} detached");
        }
        AdminCommand::Domain { command: DomainCommand::List { tenant } } => {
            for record in admin.metadata.domains(TenantId::new(tenant)).await? {
                println!("{} {}", record.domain, record.bucket.name);
            }
        }
        AdminCommand::Node { command } => {
            let (node, out) = match command {
                NodeCommand::Out { node } => (node, true),
                NodeCommand::In { node } => (node, false),
            };
            admin.set_node_out(&node, out).await?;
            println!(
                "node {node} declared {}",
                if out {
                    "out: once it no longer answers (stop it if it still runs), its shards are rebuilt elsewhere \
                     without the down-out wait, and it may then leave the layout"
                } else {
                    "in"
                }
            );
        }
        AdminCommand::Status { json } => {
            let (members, margin) = admin.status().await;
            print_status(&members, &margin, json)?
        }
        AdminCommand::Digest { json, agree: false, .. } => print_digests(&admin.digests().await, json)?,
        AdminCommand::Digest { json, agree: true, timeout_secs } => {
            let timeout = std::time::Duration::from_secs(timeout_secs);
            print_digests_at_index(&admin.digests_at_one_index(timeout).await?, json)?
        }
        AdminCommand::Layout { command: LayoutCommand::Show { json } } => {
            let (version, layout) = admin.layout().await?;
            if json {
                let doc = serde_json::json!({"version": version, "layout": layout});
                println!("{}", serde_json::to_string_pretty(&doc)?);
            } else {
                match version {
                    Some(v) => println!("# cluster layout version {v} (stored in the metadata)"),
                    None => println!("# no layout stored yet: this is the local cluster.toml"),
                }
                print!("{}", layout.to_toml());
            }
        }
        AdminCommand::Layout { command: LayoutCommand::Apply { file } } => {
            let next = ClusterConfig::load(&file)?;
            let version = admin.apply_layout(next).await?;
            println!(
                "cluster layout version {version} stored; gateways place with it within {} s, and the metadata \
                 group follows its voters and learners",
                ignifuge_gateway::datapath::layout::LAYOUT_REFRESH_MS / 1000
            );
        }
        AdminCommand::Durability { json, prometheus } => admin.durability().await?.print(json, prometheus)?,
        AdminCommand::Record { key, json } => {
            let key = key.replace("\\u0000", "\0").replace("\\0", "\0");
            print_record(&admin.metadata.record(key).await?, json)?
        }
        AdminCommand::Key { command: KeyCommand::Create { tenant } } => {
            anyhow::ensure!(admin.tenant_exists(&tenant).await?, "no tenant named {tenant}");
            print_key(&admin.create_key(&tenant).await?);
        }
        AdminCommand::Key { command: KeyCommand::Delete { access_key_id } } => {
            let command = Command::DeleteAccessKey(AccessKeyId::new(&access_key_id));
            match admin.metadata.apply(command).await {
                Ok(_) => println!(
                    "access key {access_key_id} revoked: refused by every gateway within {} s",
                    ignifuge_gateway::KEY_CACHE_TTL_MS / 1000
                ),
                Err(MetaError::NoSuchAccessKey) => anyhow::bail!("no access key {access_key_id}"),
                Err(e) => return Err(e).with_context(|| format!("revoking {access_key_id}")),
            }
        }
    }
    Ok(())
}

/// `on`, `off`, or a list of the settings to turn on.
fn parse_public_access_block(setting: &str) -> anyhow::Result<Option<ignifuge_meta::PublicAccessBlock>> {
    use ignifuge_meta::PublicAccessBlock;
    match setting {
        "on" => return Ok(Some(PublicAccessBlock::ALL)),
        "off" => return Ok(None),
        _ => {}
    }
    let mut block = PublicAccessBlock::NONE;
    for name in setting.split(',').map(str::trim) {
        match name {
            "block-public-acls" => block.block_public_acls = true,
            "ignore-public-acls" => block.ignore_public_acls = true,
            "block-public-policy" => block.block_public_policy = true,
            "restrict-public-buckets" => block.restrict_public_buckets = true,
            other => anyhow::bail!("unknown public access block setting {other:?}"),
        }
    }
    Ok(Some(block))
}

fn print_digests(digests: &[(String, Result<StateDigest, String>)], json: bool) -> anyhow::Result<()> {
    if json {
        let doc: Vec<serde_json::Value> = digests
            .iter()
            .map(|(node, d)| match d {
                Ok(d) => serde_json::json!({"node": node, "applied_index": d.applied_index, "digest": d.digest}),
                Err(e) => serde_json::json!({"node": node, "error": e}),
            })
            .collect();
        println!("{}", serde_json::to_string_pretty(&doc)?);
        return Ok(());
    }
    for (node, digest) in digests {
        match digest {
            Ok(d) => println!(
                "{node:<12} applied {:>10}  {}",
                d.applied_index.map_or("-".into(), |i| i.to_string()),
                d.digest
            ),
            Err(e) => println!("{node:<12} unreachable: {e}"),
        }
    }
    Ok(())
}

/// `ignifuge admin digest --agree`: fails when a replica's digest differs from the others'.
fn print_digests_at_index(digests: &DigestsAtIndex, json: bool) -> anyhow::Result<()> {
    let diverged = digests.diverged();
    if json {
        let members: Vec<serde_json::Value> = digests
            .members
            .iter()
            .map(|(node, answer)| match answer {
                Ok(answer) => serde_json::json!({"node": node, "answer": answer}),
                Err(e) => serde_json::json!({"node": node, "error": e}),
            })
            .collect();
        let doc = serde_json::json!({
            "index": digests.index,
            "members": members,
            "diverged": diverged,
            "unknown": digests.unknown(),
        });
        println!("{}", serde_json::to_string_pretty(&doc)?);
    } else {
        println!("state right after log index {}", digests.index);
        for (node, answer) in &digests.members {
            let what = match answer {
                Ok(DigestAt::Done { digest }) => digest.clone(),
                Ok(DigestAt::Waiting) => "did not reach the index in time".into(),
                Ok(DigestAt::Computing) => "still hashing its state".into(),
                Ok(DigestAt::Failed { error }) => format!("failed: {error}"),
                Ok(DigestAt::Missed { applied_index }) => format!("passed the index (at {applied_index}) before asked"),
                Ok(DigestAt::Forgotten) => "gave the index up".into(),
                Err(e) => format!("no answer (down, or a binary without digest-at): {e}"),
            };
            let flag = if diverged.contains(node) { "  DIFFERS" } else { "" };
            println!("{node:<12} {what}{flag}");
        }
    }
    let advice = if digests.outcome(0, 0, None).rebuild_advised() {
        "rebuild each from the others: stop it, remove its metadata directory, start it"
    } else {
        "no state is held by a majority of the replicas: compare them before rebuilding any"
    };
    anyhow::ensure!(
        diverged.is_empty(),
        "metadata replicas disagree at log index {}: {} ({advice})",
        digests.index,
        diverged.join(", ")
    );
    let unknown = digests.unknown();
    anyhow::ensure!(
        unknown.is_empty(),
        "not every replica could be compared at log index {}: {} gave no digest (those that did agree)",
        digests.index,
        unknown.join(", ")
    );
    Ok(())
}

/// `ignifuge admin record`.
fn print_record(view: &RecordView, json: bool) -> anyhow::Result<()> {
    if json {
        let value = view.value.as_deref();
        let doc = serde_json::json!({
            "key": view.key,
            "value_utf8": value.and_then(|v| std::str::from_utf8(v).ok()),
            "value_hex": value.filter(|v| std::str::from_utf8(v).is_err()).map(hex::encode),
            "value_bytes": value.map(<[u8]>::len),
            "checked": view.checked,
            "problem": view.problem,
        });
        println!("{}", serde_json::to_string_pretty(&doc)?);
        return Ok(());
    }
    println!("key: {:?}", view.key);
    let Some(value) = &view.value else {
        println!("value: none");
        return Ok(());
    };
    println!("value: {} bytes\n  {}", value.len(), printable(value));
    match (view.checked, &view.problem) {
        (false, _) => println!("reads: not checked (a kind of record the scans do not read)"),
        (true, None) => println!("reads: yes"),
        (true, Some(why)) => println!("reads: no: {why}"),
    }
    Ok(())
}

/// Bytes as text if they are UTF-8, else as hex.
fn printable(bytes: &[u8]) -> String {
    match std::str::from_utf8(bytes) {
        Ok(text) => format!("{text:?}"),
        Err(_) => format!("hex {}", hex::encode(bytes)),
    }
}

fn print_status(members: &[MemberStatus], margin: &MetadataMargin, json: bool) -> anyhow::Result<()> {
    let leader = members.iter().find_map(|m| match &m.status {
        Ok(s) if s.leader == Some(s.id) => Some((m.node.clone(), m.datacenter.clone(), s.clone())),
        _ => None,
    });
    let leader_last_log = leader.as_ref().and_then(|(_, _, l)| l.last_log_index);
    let lag = |s: &RaftStatus| leader_last_log.zip(s.applied_index).map(|(l, a)| l.saturating_sub(a));
    if json {
        let entries: Vec<serde_json::Value> = members
            .iter()
            .map(|m| match &m.status {
                Ok(s) => serde_json::json!({"node": m.node, "datacenter": m.datacenter, "role": m.role,
                    "reachable": true, "lag": lag(s), "status": s}),
                Err(e) => serde_json::json!({"node": m.node, "datacenter": m.datacenter, "role": m.role,
                    "reachable": false, "error": e}),
            })
            .collect();
        let doc = serde_json::json!({
            "leader": leader.as_ref().map(|(n, _, _)| n),
            "leader_datacenter": leader.as_ref().map(|(_, d, _)| d),
            "commit_index": leader.as_ref().and_then(|(_, _, s)| s.applied_index),
            "margin": margin,
            "members": entries,
        });
        println!("{}", serde_json::to_string_pretty(&doc)?);
        return Ok(());
    }
    match &leader {
        Some((node, dc, s)) => println!("metadata leader: {node} in {dc} (term {})", s.term),
        None => println!("metadata leader: none reachable (no quorum, or an election is under way)"),
    }
    println!(
        "{} voters, quorum {}; the default class's failure budget takes at most {} of them: every acknowledged \
         record {}, and the metadata {}",
        margin.voters,
        margin.quorum,
        margin.worst_loss,
        if margin.durable { "keeps a copy" } else { "MAY BE LOST" },
        if margin.available { "keeps answering" } else { "stops until voters return or are replaced" }
    );
    println!(
        "{:<10} {:<5} {:<8} {:<10} {:>8} {:>10} {:>10} {:>6}",
        "member", "dc", "role", "state", "term", "last log", "applied", "lag"
    );
    for m in members {
        let (node, dc, role) = (&m.node, &m.datacenter, m.role);
        match &m.status {
            Ok(s) => println!(
                "{node:<10} {dc:<5} {role:<8} {:<10} {:>8} {:>10} {:>10} {:>6}",
                // A replica that lost its log and has not caught up does not vote yet.
                if s.unproven { format!("{}(unproven)", s.state) } else { s.state.clone() },
                s.term,
                s.last_log_index.map_or("-".into(), |i| i.to_string()),
                s.applied_index.map_or("-".into(), |i| i.to_string()),
                lag(s).map_or("-".to_string(), |l| l.to_string())
            ),
            Err(e) => println!("{node:<10} {dc:<5} {role:<8} unreachable: {e}"),
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_agreement_check_waits_120_s_unless_told_and_never_0() {
        #[derive(clap::Parser)]
        struct Cli {
            #[command(flatten)]
            admin: AdminArgs,
        }
        let timeout = |extra: &[&str]| {
            let args = ["ignifuge", "digest", "--agree"].iter().chain(extra);
            <Cli as clap::Parser>::try_parse_from(args).map(|cli| match cli.admin.command {
                AdminCommand::Digest { agree: true, timeout_secs, .. } => timeout_secs,
                _ => panic!("not a digest check"),
            })
        };
        assert_eq!(timeout(&[]).unwrap(), 120);
        assert_eq!(timeout(&["--timeout-secs", "600"]).unwrap(), 600);
        assert!(timeout(&["--timeout-secs", "0"]).is_err());
        let without_agree = <Cli as clap::Parser>::try_parse_from(["ignifuge", "digest", "--timeout-secs", "60"]);
        assert!(without_agree.is_err(), "--timeout-secs means nothing without --agree");
    }

    fn at_index(answers: &[(&str, Result<DigestAt, String>)]) -> DigestsAtIndex {
        DigestsAtIndex { index: 7, members: answers.iter().map(|(n, a)| (n.to_string(), a.clone())).collect() }
    }

    #[test]
    fn the_check_fails_when_a_replica_differs_or_gives_no_digest_and_passes_only_when_all_agree() {
        let done = |d: &str| Ok(DigestAt::Done { digest: d.into() });
        assert!(print_digests_at_index(&at_index(&[("a", done("x")), ("b", done("x"))]), true).is_ok());
        let one_off = print_digests_at_index(&at_index(&[("a", done("x")), ("b", done("y")), ("c", done("x"))]), true);
        assert!(one_off.unwrap_err().to_string().contains("rebuild each from the others"));
        let tie = print_digests_at_index(&at_index(&[("a", done("x")), ("b", done("y"))]), true);
        let tie = tie.unwrap_err().to_string();
        assert!(tie.contains("compare them") && !tie.contains("remove its"), "{tie}");
        for silent in [Err("down".to_string()), Ok(DigestAt::Waiting), Ok(DigestAt::Missed { applied_index: 9 })] {
            let one_silent = at_index(&[("a", done("x")), ("b", done("x")), ("c", silent)]);
            assert!(print_digests_at_index(&one_silent, false).is_err(), "passed without comparing c");
        }
    }

    /// A round that found dc2-n3 down (or out).
    fn report(started_ms: i64, below: u64, waiting: u64) -> RepairReport {
        RepairReport {
            started_ms,
            stripes_below_budget: below,
            stripes_waiting: waiting,
            nodes_down: vec![NodeId::new("dc2-n3")],
            nodes_down_all_round: vec![NodeId::new("dc2-n3")],
            ..RepairReport::default()
        }
    }

    #[test]
    fn a_node_is_drained_only_after_a_clean_round_that_began_after_it_was_declared_out() {
        let out = vec![(NodeId::new("dc2-n3"), 1_000)];
        assert!(drained_nodes(&out, None, 0).is_empty(), "no round yet");
        assert!(drained_nodes(&out, Some(&report(900, 0, 0)), 0).is_empty(), "the round began before");
        assert!(drained_nodes(&out, Some(&report(1_100, 3, 0)), 0).is_empty(), "stripes still below budget");
        assert!(drained_nodes(&out, Some(&report(1_100, 0, 2)), 0).is_empty(), "stripes waiting");
        let unsurveyed = RepairReport { records_unreadable: 1, ..report(1_100, 0, 0) };
        assert!(drained_nodes(&out, Some(&unsurveyed), 0).is_empty(), "a record the round could not read");
        assert!(drained_nodes(&out, Some(&report(1_100, 0, 0)), 1).is_empty(), "debt written since");
        let running = RepairReport { nodes_down: Vec::new(), nodes_down_all_round: Vec::new(), ..report(1_100, 0, 0) };
        assert!(drained_nodes(&out, Some(&running), 0).is_empty(), "the node answered the round: its shards counted");
        let mid_round = RepairReport { nodes_down_all_round: Vec::new(), ..report(1_100, 0, 0) };
        assert!(
            drained_nodes(&out, Some(&mid_round), 0).is_empty(),
            "down only from a page on: earlier ones counted it"
        );
        assert_eq!(drained_nodes(&out, Some(&report(1_100, 0, 0)), 0), [NodeId::new("dc2-n3")].into());
    }
}
