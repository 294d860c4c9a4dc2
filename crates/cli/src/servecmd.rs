//! `ferrota serve` and `ferrota ca init`: thin wrappers over `ferrota_server`.

use std::io::IsTerminal;

use anyhow::{Context, Result};
use ferrota_server::ca::Ca;
use ferrota_server::server::Server;

use crate::serverargs::{CaInitArgs, ServeArgs};
pub use crate::settings::config;

/// A tokio runtime for one command.
pub fn runtime() -> Result<tokio::runtime::Runtime> {
    ferrota_server::tls::install_crypto_provider();
    Ok(tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()?)
}

/// `ferrota serve`
pub fn serve(a: &ServeArgs) -> Result<()> {
    let mut cfg = config(&a.data)?;
    if let Some(m) = &a.mqtt_listen {
        cfg.mqtt_listen = m.clone();
    }
    if let Some(h) = &a.http_listen {
        cfg.http_listen = h.clone();
    }
    if let Some(u) = &a.database_url {
        cfg.database_url = Some(u.clone());
    }
    if let Some(d) = &a.trust_dir {
        cfg.trust.dir = Some(d.clone());
    }
    cfg.http_tls |= a.http_tls;
    if a.http_cert.is_some() {
        cfg.http_cert = a.http_cert.clone();
        cfg.http_key = a.http_key.clone();
    }
    // Before anything is bound or created: an operator API in clear on the network.
    cfg.check_http_listen().map_err(anyhow::Error::msg)?;
    // Colour only for a person at a terminal: a log file, journald or a pipe gets plain text
    // (no ESC sequences to strip).
    let _ = tracing_subscriber::fmt()
        .with_writer(std::io::stderr)
        .with_ansi(std::io::stderr().is_terminal())
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_default_env().unwrap_or_else(|_| "info".into()),
        )
        .try_init();
    runtime()?.block_on(async move {
        let mqtt = tokio::net::TcpListener::bind(&cfg.mqtt_listen)
            .await
            .with_context(|| format!("MQTT listen address {}", cfg.mqtt_listen))?;
        let http = tokio::net::TcpListener::bind(&cfg.http_listen)
            .await
            .with_context(|| format!("HTTP listen address {}", cfg.http_listen))?;
        let port = mqtt.local_addr()?.port();
        let server = Server::open(&cfg, port).await?;
        // Recorded before the addresses are printed, so that whoever waits for the `http`
        // line finds the record in place.
        crate::settings::record(
            &cfg,
            &crate::settings::Listening {
                mqtt: mqtt.local_addr()?,
                http: http.local_addr()?,
                endpoint: cfg.endpoint.clone(),
                pid: std::process::id(),
                https: server.http_is_tls(),
            },
        )?;
        // One write for all the lines: a reader that stops after the lines it wants (and
        // closes the pipe) must not make a later line fail on a broken pipe.
        let scheme = if server.http_is_tls() {
            "https"
        } else {
            "http"
        };
        print!(
            "mqtt {}\nhttp {}\ntoken-file {}\napi {scheme}://{}\n",
            mqtt.local_addr()?,
            http.local_addr()?,
            cfg.token_path().display(),
            crate::settings::connectable(http.local_addr()?)
        );
        std::io::Write::flush(&mut std::io::stdout())?;
        server
            .run(mqtt, Some(http), shutdown_signal())
            .await
            .context("server")
    })
}

async fn shutdown_signal() {
    let ctrl_c = tokio::signal::ctrl_c();
    #[cfg(unix)]
    {
        let mut term =
            tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()).ok();
        tokio::select! {
            _ = ctrl_c => {}
            _ = async { match term.as_mut() { Some(t) => { t.recv().await; } None => std::future::pending().await } } => {}
        }
    }
    #[cfg(not(unix))]
    {
        let _ = ctrl_c.await;
    }
}

/// `ferrota ca init`
pub fn ca_init(a: &CaInitArgs) -> Result<()> {
    let cfg = config(&a.data)?;
    let mut names = cfg.server_names.clone();
    names.extend(a.server_names.iter().cloned());
    let dir = cfg.ca_dir();
    if Ca::cert_path(&dir).exists() {
        // Before touching the database: the message of an existing CA, not of a lost database.
        return Err(ferrota_server::ca::CaError::Exists(dir).into());
    }
    runtime()?.block_on(ferrota_server::server::init_data_dir(&cfg, &names))?;
    println!("{}", Ca::cert_path(&dir).display());
    eprintln!(
        "created the fleet CA and the server certificate in {}",
        dir.display()
    );
    Ok(())
}
