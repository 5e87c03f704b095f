//! A stand-in for Supabase's PostgREST, serving only its function protocol: `POST /rest/v1/rpc/<fn>`
//! (and `GET` with query-string arguments, in a read-only transaction). Facts it follows:
//! `docs/postgrest.md`.
//!
//! Each request: the gateway's `apikey` check and the JWT check (`auth`), the function chosen from the
//! catalog by the body's keys (`functions`), then ONE transaction as the `authenticator` user that switches to
//! the JWT's role, exposes the claims in `request.jwt.claims`, calls the function and commits, or rolls back
//! on any error, which is answered in PostgREST's shape (`errors`). As with PostgREST, a call goes on to its end
//! when the client gives up waiting (PostgREST/postgrest#2352).

pub mod auth;
pub mod errors;
pub mod functions;

use std::time::{Duration, Instant};

use axum::body::Bytes;
use axum::extract::{Path, RawQuery, State};
use axum::http::{header, HeaderMap, Method, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::any;
use axum::Router;
use deadpool_postgres::{Manager, ManagerConfig, Pool, PoolError, RecyclingMethod, Runtime};
use serde_json::{Map, Value};
use tokio::net::TcpListener;
use tokio_postgres::NoTls;

use auth::{Caller, JwtSecret};
use errors::ApiError;
use functions::Shape;

/// The schema whose functions are served, as `[api] schemas` in `supabase/config.toml`.
const EXPOSED_SCHEMA: &str = "public";

#[derive(Debug, Clone)]
pub struct RpcApiConfig {
    /// Where the API connects: as `authenticator`, like PostgREST.
    pub database: tokio_postgres::Config,
    pub jwt_secret: String,
    /// Connections kept; requests beyond wait for one (up to `pool_wait`).
    pub pool_size: usize,
    pub pool_wait: Duration,
}

#[derive(Clone)]
struct RpcApi {
    pool: Pool,
    jwt: JwtSecret,
}

/// Serves the API on `listener` until `shutdown` resolves.
pub async fn serve(
    listener: TcpListener,
    config: RpcApiConfig,
    shutdown: impl std::future::Future<Output = ()> + Send + 'static,
) -> std::io::Result<()> {
    let app = router(config).map_err(std::io::Error::other)?;
    axum::serve(listener, app).with_graceful_shutdown(shutdown).await
}

pub fn router(config: RpcApiConfig) -> Result<Router, String> {
    let manager = Manager::from_config(config.database, NoTls, ManagerConfig { recycling_method: RecyclingMethod::Fast });
    let pool = Pool::builder(manager)
        .max_size(config.pool_size)
        .wait_timeout(Some(config.pool_wait))
        .create_timeout(Some(Duration::from_secs(5)))
        .runtime(Runtime::Tokio1)
        .build()
        .map_err(|e| format!("connection pool: {e}"))?;
    let api = RpcApi { pool, jwt: JwtSecret::new(&config.jwt_secret) };
    Ok(Router::new()
        .route("/rest/v1/rpc/{function}", any(call_function))
        .fallback(not_served)
        .with_state(api))
}

async fn not_served() -> ApiError {
    ApiError::new(
        StatusCode::NOT_FOUND,
        "LOCAL_RPC_ONLY",
        "This local API serves functions only: POST /rest/v1/rpc/<function>. Tables are not exposed.",
    )
    .hint("For the whole PostgREST API, run `supabase start` (needs Docker).")
}

async fn call_function(
    State(api): State<RpcApi>,
    method: Method,
    Path(function): Path<String>,
    RawQuery(query): RawQuery,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    let started = Instant::now();
    // Like PostgREST, a call runs to its end (commit or rollback) even when the client stops waiting: the work
    // is a task of its own, which a dropped connection does not cancel.
    let work = {
        let (method, function) = (method.clone(), function.clone());
        tokio::spawn(async move {
            match handle(&api, &method, &function, query.as_deref(), &headers, &body).await {
                Ok(response) => response,
                Err(error) => error.into_response(),
            }
        })
    };
    let response = work.await.unwrap_or_else(|_| StatusCode::INTERNAL_SERVER_ERROR.into_response());
    tracing::info!(
        method = %method, function = %function, status = response.status().as_u16(),
        ms = started.elapsed().as_millis() as u64, "rpc"
    );
    response
}

async fn handle(
    api: &RpcApi,
    method: &Method,
    function: &str,
    query: Option<&str>,
    headers: &HeaderMap,
    body: &Bytes,
) -> Result<Response, ApiError> {
    let read_only = match *method {
        Method::POST => false,
        Method::GET => true,
        _ => {
            return Err(ApiError::new(
                StatusCode::METHOD_NOT_ALLOWED,
                "PGRST101",
                "For functions, only GET and POST verbs are allowed",
            ))
        }
    };
    let caller = api.jwt.authenticate(headers)?;
    let arguments = if read_only { query_arguments(query) } else { body_arguments(body)? };

    let mut client = api.pool.get().await.map_err(pool_error)?;
    let overloads = functions::find(&**client, EXPOSED_SCHEMA, function)
        .await
        .map_err(|e| database_error(&e, &caller))?;
    let call = functions::choose(&overloads, EXPOSED_SCHEMA, function, &arguments)?.call(&arguments);

    let transaction = client
        .build_transaction()
        .read_only(read_only)
        .start()
        .await
        .map_err(|e| database_error(&e, &caller))?;
    let request_headers: Map<String, Value> = headers
        .iter()
        .filter_map(|(name, value)| Some((name.as_str().to_owned(), Value::String(value.to_str().ok()?.to_owned()))))
        .collect();
    transaction
        .execute(
            "select set_config('request.jwt.claims', $1, true), set_config('request.headers', $2, true),
                    set_config('request.method', $3, true), set_config('request.path', $4, true),
                    set_config('role', $5, true)",
            &[
                &caller.claims.to_string(),
                &Value::Object(request_headers).to_string(),
                &method.as_str(),
                &format!("/rpc/{function}"),
                &caller.role,
            ],
        )
        .await
        .map_err(|e| database_error(&e, &caller))?;
    let body_text = arguments.to_string();
    let parameters: &[&(dyn tokio_postgres::types::ToSql + Sync)] = if call.takes_body { &[&body_text] } else { &[] };
    let row = transaction
        .query_opt(&call.sql, parameters)
        .await
        .map_err(|e| database_error(&e, &caller))?;
    transaction.commit().await.map_err(|e| database_error(&e, &caller))?;

    let json = row.and_then(|r| r.get::<_, Option<String>>(0)).unwrap_or_else(|| "null".to_owned());
    Ok(match call.shape {
        Shape::Empty => StatusCode::NO_CONTENT.into_response(),
        Shape::Single => json_response(json, None),
        Shape::Set => {
            let count = serde_json::from_str::<Vec<Value>>(&json).map(|v| v.len()).unwrap_or(0);
            let range = if count == 0 { "*/*".to_owned() } else { format!("0-{}/*", count - 1) };
            json_response(json, Some(range))
        }
    })
}

fn json_response(json: String, content_range: Option<String>) -> Response {
    let mut response = (StatusCode::OK, [(header::CONTENT_TYPE, "application/json; charset=utf-8")], json).into_response();
    if let Some(range) = content_range.and_then(|r| r.parse().ok()) {
        response.headers_mut().insert(header::CONTENT_RANGE, range);
    }
    response
}

/// The JSON body; an empty body is `{}`.
fn body_arguments(body: &Bytes) -> Result<Value, ApiError> {
    if body.iter().all(u8::is_ascii_whitespace) {
        return Ok(Value::Object(Map::new()));
    }
    serde_json::from_slice(body)
        .map_err(|e| ApiError::new(StatusCode::BAD_REQUEST, "PGRST102", "Empty or invalid json").details(e.to_string()))
}

/// `GET /rpc/f?a=1&b=x`: every argument as text, converted by Postgres like PostgREST does.
fn query_arguments(query: Option<&str>) -> Value {
    let pairs = form_urlencoded::parse(query.unwrap_or_default().as_bytes());
    Value::Object(pairs.map(|(k, v)| (k.into_owned(), Value::String(v.into_owned()))).collect())
}

fn database_error(error: &tokio_postgres::Error, caller: &Caller) -> ApiError {
    match error.as_db_error() {
        Some(db) => ApiError::from_database(db, !caller.is_anonymous()),
        None => ApiError::new(StatusCode::SERVICE_UNAVAILABLE, "PGRST001", "Database client error. Retrying the connection.")
            .details(error.to_string()),
    }
}

fn pool_error(error: PoolError) -> ApiError {
    match error {
        PoolError::Timeout(deadpool_postgres::TimeoutType::Wait) => ApiError::new(
            StatusCode::GATEWAY_TIMEOUT,
            "PGRST003",
            "Timed out acquiring connection from connection pool.",
        ),
        other => ApiError::new(
            StatusCode::SERVICE_UNAVAILABLE,
            "PGRST000",
            "Could not connect with the database due to an incorrect db-uri or due to the PostgreSQL service not running.",
        )
        .details(other.to_string()),
    }
}
