//! The local stack's stand-ins, one process each, until Ctrl-C or SIGTERM:
//!   `devstack rpc-api`          PostgREST's function protocol on 127.0.0.1:54321
//!   `devstack intakeq-sandbox`  IntakeQ's API on 127.0.0.1:54380/api/v1
//!   `devstack alert-receiver`   a Slack-style incoming webhook for staff alerts on 127.0.0.1:54390/hooks/...
//!   `devstack turnstile`        Cloudflare Turnstile's siteverify on 127.0.0.1:54391/turnstile/v0/siteverify
//!   `devstack keys`             the anon and service_role keys the RPC API accepts
//! Every flag has an environment variable, so `make dev` can be pointed elsewhere.

use std::io::IsTerminal;
use std::time::Duration;

use clap::{Args, Parser, Subcommand};
use devstack::alert_receiver::{self, AlertReceiverConfig};
use devstack::intakeq_sandbox::{self, RateLimitConfig, SandboxConfig};
use devstack::rpc_api::auth::{JwtSecret, SUPABASE_DEMO_JWT_SECRET};
use devstack::rpc_api::{self, RpcApiConfig};
use devstack::turnstile::{self, TurnstileConfig};
use tokio::net::TcpListener;

#[derive(Parser)]
#[command(about = "Local stand-ins for Supabase's PostgREST, for IntakeQ, for a staff-alert webhook and for Turnstile")]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Serve PostgREST's function protocol over the local Postgres.
    RpcApi(RpcApiArgs),
    /// Serve the IntakeQ sandbox.
    IntakeqSandbox(SandboxArgs),
    /// Serve the staff-alert receiver (a Slack-style incoming webhook).
    AlertReceiver(AlertReceiverArgs),
    /// Serve the Turnstile stand-in (Cloudflare's siteverify endpoint).
    Turnstile(TurnstileArgs),
    /// Print the anon and service_role keys the RPC API accepts, as KEY=value lines.
    Keys {
        #[arg(long, env = "JWT_SECRET", default_value = SUPABASE_DEMO_JWT_SECRET, hide_env_values = true)]
        jwt_secret: String,
    },
}

#[derive(Args)]
struct RpcApiArgs {
    #[arg(long, env = "DEVSTACK_HOST", default_value = "127.0.0.1")]
    host: String,
    #[arg(long, env = "RPC_API_PORT", default_value_t = 54321)]
    port: u16,
    /// The Postgres whose `public` functions are served, reached as PostgREST's `authenticator`.
    #[arg(long, env = "RPC_DATABASE_URL", default_value = "postgresql://authenticator:postgres@127.0.0.1:54322/postgres")]
    database_url: String,
    #[arg(long, env = "JWT_SECRET", default_value = SUPABASE_DEMO_JWT_SECRET, hide_env_values = true)]
    jwt_secret: String,
    #[arg(long, env = "RPC_POOL_SIZE", default_value_t = 20)]
    pool_size: usize,
}

#[derive(Args)]
struct SandboxArgs {
    #[arg(long, env = "DEVSTACK_HOST", default_value = "127.0.0.1")]
    host: String,
    #[arg(long, env = "INTAKEQ_SANDBOX_PORT", default_value_t = 54380)]
    port: u16,
    /// The X-Auth-Key the sandbox accepts.
    #[arg(long, env = "INTAKEQ_SANDBOX_API_KEY", default_value = "sandbox-intakeq-key")]
    api_key: String,
    #[arg(long, env = "INTAKEQ_RATE_LIMIT_PER_MINUTE", default_value_t = 10)]
    rate_limit_per_minute: u32,
    /// Requests in any sliding day (1440 of the sandbox's minutes).
    #[arg(long, env = "INTAKEQ_RATE_LIMIT_PER_DAY", default_value_t = intakeq_sandbox::DEFAULT_RATE_LIMIT_PER_DAY)]
    rate_limit_per_day: u32,
    /// How long the sandbox's minute lasts, in ms: shorter makes the rate limit's clock run fast.
    #[arg(long, env = "INTAKEQ_SANDBOX_MINUTE_MS", default_value_t = 60_000,
          value_parser = clap::value_parser!(u64).range(1..))]
    minute_ms: u64,
    /// The practice's IANA time zone: `GET /appointments` reads `startDate`/`endDate` as dates in it.
    #[arg(long, env = "INTAKEQ_SANDBOX_TIME_ZONE", default_value = "America/Denver")]
    time_zone: intakeq_sandbox::Tz,
}

#[derive(Args)]
struct AlertReceiverArgs {
    #[arg(long, env = "DEVSTACK_HOST", default_value = "127.0.0.1")]
    host: String,
    #[arg(long, env = "ALERT_RECEIVER_PORT", default_value_t = 54390)]
    port: u16,
}

#[derive(Args)]
struct TurnstileArgs {
    #[arg(long, env = "DEVSTACK_HOST", default_value = "127.0.0.1")]
    host: String,
    #[arg(long, env = "TURNSTILE_STANDIN_PORT", default_value_t = 54391)]
    port: u16,
    /// The site's secret key siteverify accepts (besides Cloudflare's test secret keys).
    #[arg(long, env = "TURNSTILE_STANDIN_SECRET", default_value = turnstile::DEFAULT_SECRET, hide_env_values = true)]
    secret: String,
}

#[tokio::main]
async fn main() -> Result<(), String> {
    tracing_subscriber::fmt()
        .with_env_filter(tracing_subscriber::EnvFilter::try_from_default_env().unwrap_or_else(|_| "info".into()))
        .with_writer(std::io::stderr)
        .with_ansi(std::io::stderr().is_terminal())
        .compact()
        .init();
    match Cli::parse().command {
        Command::Keys { jwt_secret } => {
            let secret = JwtSecret::new(&jwt_secret);
            println!("SUPABASE_ANON_KEY={}", secret.demo_key("anon"));
            println!("SUPABASE_SERVICE_ROLE_KEY={}", secret.demo_key("service_role"));
            Ok(())
        }
        Command::RpcApi(args) => {
            let listener = bind(&args.host, args.port).await?;
            let database = args.database_url.parse().map_err(|e| format!("RPC_DATABASE_URL: {e}"))?;
            let config = RpcApiConfig {
                database,
                jwt_secret: args.jwt_secret,
                pool_size: args.pool_size,
                pool_wait: Duration::from_secs(10),
            };
            tracing::info!("RPC API on http://{}/rest/v1/rpc/<function>", listener.local_addr().unwrap());
            rpc_api::serve(listener, config, stop_signal()).await.map_err(|e| e.to_string())
        }
        Command::IntakeqSandbox(args) => {
            let listener = bind(&args.host, args.port).await?;
            let config = SandboxConfig {
                api_key: args.api_key,
                rate_limit_per_minute: args.rate_limit_per_minute,
                default_delay: Duration::from_secs(30),
                practice_time_zone: args.time_zone,
            };
            let rate_limit =
                RateLimitConfig { per_day: args.rate_limit_per_day, minute: Duration::from_millis(args.minute_ms) };
            tracing::info!("IntakeQ sandbox on http://{}/api/v1 (control: /_sandbox)", listener.local_addr().unwrap());
            intakeq_sandbox::serve_with_rate_limit(listener, config, rate_limit, stop_signal())
                .await
                .map_err(|e| e.to_string())
        }
        Command::AlertReceiver(args) => {
            let listener = bind(&args.host, args.port).await?;
            let config = AlertReceiverConfig { default_delay: Duration::from_secs(30) };
            tracing::info!("alert receiver on http://{}/hooks/<name> (control: /_receiver)", listener.local_addr().unwrap());
            alert_receiver::serve(listener, config, stop_signal()).await.map_err(|e| e.to_string())
        }
        Command::Turnstile(args) => {
            let listener = bind(&args.host, args.port).await?;
            let config = TurnstileConfig { secret: args.secret, ..TurnstileConfig::default() };
            let address = listener.local_addr().unwrap();
            tracing::info!("Turnstile stand-in on http://{address}/turnstile/v0/siteverify (control: /_turnstile)");
            turnstile::serve(listener, config, stop_signal()).await.map_err(|e| e.to_string())
        }
    }
}

async fn bind(host: &str, port: u16) -> Result<TcpListener, String> {
    TcpListener::bind((host, port)).await.map_err(|e| format!("cannot listen on {host}:{port}: {e}"))
}

/// Resolves on Ctrl-C or SIGTERM.
async fn stop_signal() {
    let mut terminate = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate())
        .expect("SIGTERM handler");
    tokio::select! {
        _ = tokio::signal::ctrl_c() => {},
        _ = terminate.recv() => {},
    }
    tracing::info!("stopping");
}
