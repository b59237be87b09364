//! One call that runs a simulator as its own process (`minipay sim van|card`).

use super::{SimConfig, SimKind, Simulator, http_router};
use anyhow::Context as _;
use minipay_wire::Dialect;
use std::net::SocketAddr;

/// Runs one simulator on `listen` speaking `dialect` (a shipped dialect's name, or the path of
/// a dialect file), with its HTTP side (faults, settlement file) on `http` when given, until
/// ctrl-c.
pub async fn run_standalone(
    kind: SimKind,
    listen: SocketAddr,
    http: Option<SocketAddr>,
    dialect: &str,
    id: String,
) -> anyhow::Result<()> {
    let dialect = load_dialect(dialect)?;
    let sim = Simulator::start(listen, SimConfig::new(id, kind, dialect))
        .await
        .with_context(|| format!("binding the simulator to {listen}"))?;
    println!("simulator {} listening on {}", sim.id(), sim.addr());
    let http_task = match http {
        Some(addr) => Some(serve_http(addr, sim.clone()).await?),
        None => None,
    };
    tokio::signal::ctrl_c().await.context("waiting for ctrl-c")?;
    sim.shutdown();
    if let Some(task) = http_task {
        task.abort();
    }
    Ok(())
}

fn load_dialect(name: &str) -> anyhow::Result<Dialect> {
    if let Some(dialect) = minipay_wire::shipped(name) {
        return Ok(dialect);
    }
    let text = std::fs::read_to_string(name)
        .with_context(|| format!("{name} is neither a shipped dialect nor a readable file"))?;
    Dialect::from_toml(&text).with_context(|| format!("loading the dialect file {name}"))
}

async fn serve_http(addr: SocketAddr, sim: super::SimHandle) -> anyhow::Result<tokio::task::JoinHandle<()>> {
    let listener = tokio::net::TcpListener::bind(addr)
        .await
        .with_context(|| format!("binding the simulator's HTTP side to {addr}"))?;
    println!("simulator HTTP on http://{}", listener.local_addr()?);
    let router = http_router(vec![sim]);
    Ok(tokio::spawn(async move {
        if let Err(e) = axum::serve(listener, router).await {
            tracing::error!(error = %e, "simulator HTTP server failed");
        }
    }))
}
