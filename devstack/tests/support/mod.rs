//! What the stand-ins' tests share: the throwaway database, and servers started in the test on free ports.
#![allow(dead_code)]

use std::time::Duration;

use devstack::intakeq_sandbox::{self, SandboxConfig};
use devstack::rpc_api::auth::{JwtSecret, SUPABASE_DEMO_JWT_SECRET};
use devstack::rpc_api::{self, RpcApiConfig};
use tokio::net::TcpListener;
use tokio::sync::OnceCell;
use tokio_postgres::NoTls;

/// The migrated, seeded throwaway database (`make test-stack` sets it), as the `postgres` superuser.
pub fn test_database_url() -> String {
    std::env::var("TEST_DATABASE_URL").expect(
        "TEST_DATABASE_URL must point at a migrated and seeded database; `make test-stack` creates one and sets it",
    )
}

pub async fn database() -> tokio_postgres::Client {
    let (client, connection) = tokio_postgres::connect(&test_database_url(), NoTls)
        .await
        .expect("cannot connect to TEST_DATABASE_URL");
    tokio::spawn(connection);
    client
}

/// Installs `fixtures/rpc_fidelity.sql` once per test binary.
pub async fn install_rpc_fixtures() {
    static INSTALLED: OnceCell<()> = OnceCell::const_new();
    INSTALLED
        .get_or_init(|| async {
            database()
                .await
                .batch_execute(include_str!("../fixtures/rpc_fidelity.sql"))
                .await
                .expect("install RPC fixtures");
        })
        .await;
}

pub fn key(role: &str) -> String {
    JwtSecret::new(SUPABASE_DEMO_JWT_SECRET).demo_key(role)
}

pub fn sign(claims: serde_json::Value) -> String {
    JwtSecret::new(SUPABASE_DEMO_JWT_SECRET).sign(&claims)
}

async fn free_listener() -> TcpListener {
    TcpListener::bind("127.0.0.1:0").await.expect("bind a free port")
}

/// Starts the RPC API over the test database; answers its base URL (`http://127.0.0.1:<port>`).
pub async fn start_rpc_api(pool_size: usize) -> String {
    let mut database: tokio_postgres::Config = test_database_url().parse().unwrap();
    database.user("authenticator").password("postgres");
    let listener = free_listener().await;
    let address = listener.local_addr().unwrap();
    let config = RpcApiConfig {
        database,
        jwt_secret: SUPABASE_DEMO_JWT_SECRET.into(),
        pool_size,
        pool_wait: Duration::from_secs(10),
    };
    tokio::spawn(rpc_api::serve(listener, config, std::future::pending()));
    format!("http://{address}")
}

pub const SANDBOX_KEY: &str = "test-intakeq-key";

/// Starts an IntakeQ sandbox of the test's own; answers its base URL (`http://127.0.0.1:<port>`).
pub async fn start_sandbox(rate_limit_per_minute: u32) -> String {
    let listener = free_listener().await;
    let address = listener.local_addr().unwrap();
    let config = SandboxConfig {
        api_key: SANDBOX_KEY.into(),
        rate_limit_per_minute,
        default_delay: Duration::from_secs(30),
        practice_time_zone: intakeq_sandbox::DEFAULT_PRACTICE_TIME_ZONE,
    };
    tokio::spawn(intakeq_sandbox::serve(listener, config, std::future::pending()));
    format!("http://{address}")
}
