//! `ignifuge admin`: tenants and access keys, applied to the metadata of a running cluster.

use crate::daemons::read_secret;
use anyhow::Context as _;
use clap::{Args, Subcommand};
use ignifuge_meta::{AccessKeyRecord, Answer, Command, MetaError, Outcome, Query, TenantRecord};
use ignifuge_rpc::{ClusterConfig, InternodeAuth, NodeClient, SecretSealer, paths};
use ignifuge_types::{AccessKeyId, TenantId, UserId};
use rand::Rng as _;
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
}

#[derive(Subcommand)]
enum TenantCommand {
    /// Create a tenant and a first access key for it; prints the key as shell exports.
    Create { name: String },
}

#[derive(Subcommand)]
enum KeyCommand {
    /// Create an access key for an existing tenant; prints it as shell exports.
    Create {
        #[arg(long)]
        tenant: String,
    },
}

/// A freshly made access key, printed once and stored only sealed.
pub struct NewKey {
    pub access_key_id: String,
    pub secret_access_key: String,
}

/// Talks to the metadata of a cluster described by a data directory.
pub struct Admin {
    client: NodeClient,
    metadata: std::net::SocketAddr,
    sealer: SecretSealer,
}

fn now_ms() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_millis() as i64)
        .unwrap_or(0)
}

fn random_string(alphabet: &[u8], len: usize) -> String {
    let mut rng = rand::rng();
    (0..len)
        .map(|_| alphabet[rng.random_range(0..alphabet.len())] as char)
        .collect()
}

impl Admin {
    pub fn open(data_dir: &Path) -> anyhow::Result<Self> {
        let cluster = ClusterConfig::load(&data_dir.join("cluster.toml"))?;
        let secret = read_secret(&data_dir.join("cluster.secret"))?;
        let metadata = cluster
            .node(&cluster.metadata_node)
            .context("metadata node missing")?
            .address;
        Ok(Self {
            client: NodeClient::new(Arc::new(InternodeAuth::new(&secret))),
            metadata,
            sealer: SecretSealer::new(&secret),
        })
    }

    async fn apply(&self, command: Command) -> anyhow::Result<Result<Outcome, MetaError>> {
        Ok(self
            .client
            .post_json(self.metadata, paths::META_APPLY, &command)
            .await?)
    }

    pub async fn tenant_exists(&self, name: &str) -> anyhow::Result<bool> {
        let answer: Result<Answer, MetaError> = self
            .client
            .post_json(
                self.metadata,
                paths::META_QUERY,
                &Query::Tenant(TenantId::new(name)),
            )
            .await?;
        match answer {
            Ok(_) => Ok(true),
            Err(MetaError::NoSuchTenant) => Ok(false),
            Err(e) => Err(e.into()),
        }
    }

    pub async fn create_tenant(&self, name: &str) -> anyhow::Result<()> {
        anyhow::ensure!(
            !name.is_empty()
                && name.len() <= 64
                && name
                    .bytes()
                    .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_'),
            "tenant names are 1-64 letters, digits, '-' or '_'"
        );
        self.apply(Command::CreateTenant(TenantRecord {
            id: TenantId::new(name),
            created_ms: now_ms(),
        }))
        .await?
        .with_context(|| format!("creating tenant {name}"))?;
        Ok(())
    }

    pub async fn create_key(&self, tenant: &str) -> anyhow::Result<NewKey> {
        let access_key_id = format!(
            "IGN{}",
            random_string(b"ABCDEFGHIJKLMNOPQRSTUVWXYZ234567", 17)
        );
        let secret_access_key = random_string(
            b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/",
            40,
        );
        let record = AccessKeyRecord {
            access_key_id: AccessKeyId::new(access_key_id.clone()),
            tenant: TenantId::new(tenant),
            user: UserId::new("admin"),
            sealed_secret: self.sealer.seal(&access_key_id, &secret_access_key),
            created_ms: now_ms(),
        };
        self.apply(Command::CreateAccessKey(record))
            .await?
            .with_context(|| format!("creating a key for tenant {tenant}"))?;
        Ok(NewKey {
            access_key_id,
            secret_access_key,
        })
    }
}

fn print_key(key: &NewKey) {
    println!("export AWS_ACCESS_KEY_ID={}", key.access_key_id);
    println!("export AWS_SECRET_ACCESS_KEY={}", key.secret_access_key);
}

pub async fn run(args: AdminArgs) -> anyhow::Result<()> {
    let admin = Admin::open(&args.data_dir)?;
    match args.command {
        AdminCommand::Tenant {
            command: TenantCommand::Create { name },
        } => {
            admin.create_tenant(&name).await?;
            print_key(&admin.create_key(&name).await?);
        }
        AdminCommand::Key {
            command: KeyCommand::Create { tenant },
        } => {
            anyhow::ensure!(
                admin.tenant_exists(&tenant).await?,
                "no tenant named {tenant}"
            );
            print_key(&admin.create_key(&tenant).await?);
        }
    }
    Ok(())
}
