//! Metrics for the product guide's workflows: installs the Prometheus
//! exporter with its HTTP listener on 127.0.0.1, runs a small workload
//! (tenants, transitions, a refused patch, snapshots, rollbacks, a
//! transaction that rolls back, one that commits), then scrapes its own
//! `/metrics` and prints the `rewind_*` series.
//!
//! Run with `cargo run --example prometheus`. It checks that the metrics of
//! DESIGN.md are exported (with explicit histogram buckets) and exits
//! non-zero otherwise.

use std::net::{Ipv4Addr, SocketAddr};

use anyhow::{bail, ensure, Context, Result};
use metrics_exporter_prometheus::{Matcher, PrometheusBuilder};
use rewind::prelude::*;
use rewind::runtime::metrics as names;
use serde_json::json;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

#[tokio::main]
async fn main() -> Result<()> {
    // The exporter binds the address it is given and cannot report an
    // ephemeral port back, so ask the OS for a free one first.
    let addr = {
        let probe = std::net::TcpListener::bind((Ipv4Addr::LOCALHOST, 0))?;
        probe.local_addr()?
    };
    PrometheusBuilder::new()
        .with_http_listener(addr)
        .set_buckets_for_metric(
            Matcher::Suffix("duration_seconds".into()),
            names::DURATION_BUCKETS,
        )?
        .set_buckets_for_metric(
            Matcher::Full(names::JOURNAL_BATCH_RECORDS.into()),
            names::BATCH_BUCKETS,
        )?
        .install()?;
    names::describe();
    println!("exporter listening on http://{addr}/metrics");

    let runtime = Runtime::<Doc>::start().await?;
    workload(&runtime).await?;

    let body = scrape(addr).await?;
    println!("\nrewind series:");
    // Histogram buckets are cumulative: show only those where the count grows.
    let mut previous_bucket = None;
    for line in body.lines().filter(|l| l.starts_with("rewind_")) {
        if let Some((series, count)) = line
            .split_once("_bucket{")
            .and_then(|(name, rest)| Some((name, rest.rsplit_once(' ')?.1)))
        {
            let same = previous_bucket == Some((series, count));
            previous_bucket = Some((series, count));
            if same || count == "0" {
                continue;
            }
        }
        println!("  {line}");
    }

    for metric in [
        names::TRANSITIONS_TOTAL,
        names::SNAPSHOTS_CREATED_TOTAL,
        names::ROLLBACKS_TOTAL,
        names::TRANSACTIONS_TOTAL,
        names::TENANTS,
    ] {
        ensure!(
            body.lines()
                .any(|l| l.starts_with(metric) && !l.starts_with(&format!("{metric}_"))),
            "{metric} must be exported"
        );
    }
    ensure!(
        body.lines()
            .any(|l| l.starts_with("rewind_transition_duration_seconds_bucket{le=")),
        "transition durations must be a histogram with explicit buckets"
    );
    ensure!(
        body.contains("# TYPE rewind_transition_duration_seconds histogram")
            && body.contains("# HELP rewind_transitions_total State transitions by outcome"),
        "types and descriptions are exported"
    );
    // The workload's counts.
    for (series, expected) in [
        (r#"rewind_transitions_total{outcome="ok"}"#, 9.0),
        (r#"rewind_transitions_total{outcome="rejected"}"#, 1.0),
        (r#"rewind_snapshots_created_total{kind="named"}"#, 3.0),
        (
            r#"rewind_rollbacks_total{target="named",outcome="ok"}"#,
            3.0,
        ),
        (
            r#"rewind_rollbacks_total{target="latest",outcome="ok"}"#,
            1.0,
        ),
        (r#"rewind_transactions_total{outcome="rolled_back"}"#, 1.0),
        (r#"rewind_transactions_total{outcome="committed"}"#, 1.0),
        ("rewind_tenants", 3.0),
    ] {
        let got = sample(&body, series)?;
        ensure!(got == expected, "{series} = {got}, expected {expected}");
    }

    runtime.shutdown().await?;
    println!("\nprometheus export checked ✔");
    Ok(())
}

/// Three tenants, each taken through the guide's everyday operations.
async fn workload(runtime: &Runtime<Doc>) -> Result<()> {
    for id in ["acme_corp", "widgets_r_us", "globex"] {
        let tenant = runtime
            .create_tenant(
                id,
                Doc::from_json(&json!({"version": "1.0", "sessions": 0}))?,
            )
            .await?;
        tenant.snapshot_named("v1.0").await?;
        for sessions in [10, 20] {
            tenant
                .apply(Patch::from_json(&json!([
                    {"op": "replace", "path": "/sessions", "value": sessions}
                ]))?)
                .await?;
        }
        tenant.snapshot().await?;
        // Back to v1.0: a named rollback (after its pre-rollback snapshot).
        tenant.rollback_to_named_snapshot("v1.0").await?;
    }

    let acme = runtime.tenant("acme_corp").await?;
    // Return to the present: the latest snapshot is the pre-rollback one.
    acme.rollback_to_latest_snapshot().await?;
    // A patch whose `test` fails is refused and changes nothing.
    let refused = acme
        .apply(Patch::from_json(&json!([
            {"op": "test", "path": "/version", "value": "9.9"},
            {"op": "replace", "path": "/version", "value": "10.0"}
        ]))?)
        .await;
    ensure!(refused.is_err(), "the failing patch must be refused");

    // The guide's four-step transaction, whose notification step fails.
    let report = acme
        .transaction()
        .step(
            "session_created",
            Patch::from_json(&json!([{"op": "add", "path": "/session", "value": "s-1"}]))?,
        )
        .step(
            "config_set",
            Patch::from_json(
                &json!([{"op": "add", "path": "/config", "value": {"theme": "dark"}}]),
            )?,
        )
        .effect("send_notifications", |_state: Doc| async {
            Err::<(), _>("SMTP relay unavailable")
        })
        .run()
        .await
        .err()
        .context("the notification step fails")?
        .into_transaction_report()?;
    if report.outcome != TransactionOutcome::RolledBack {
        bail!("the transaction must roll back: {:?}", report.outcome);
    }
    ensure!(
        acme.current().pointer("/session").is_none(),
        "rolled back to the start"
    );

    // And one that commits.
    let report = runtime
        .tenant("globex")
        .await?
        .transaction()
        .step(
            "release",
            Patch::from_json(&json!([{"op": "replace", "path": "/version", "value": "2.0"}]))?,
        )
        .run()
        .await?;
    ensure!(report.is_committed(), "the release transaction commits");
    Ok(())
}

/// `GET /metrics` over plain HTTP/1.1.
async fn scrape(addr: SocketAddr) -> Result<String> {
    let mut stream = TcpStream::connect(addr).await?;
    let request = format!(
        "GET /metrics HTTP/1.1\r\nHost: {addr}\r\nAccept: text/plain\r\nConnection: close\r\n\r\n"
    );
    stream.write_all(request.as_bytes()).await?;
    let mut response = Vec::new();
    stream.read_to_end(&mut response).await?;
    let response = String::from_utf8(response)?;
    let (head, body) = response
        .split_once("\r\n\r\n")
        .context("malformed HTTP response")?;
    let status = head.lines().next().unwrap_or_default();
    ensure!(
        status.starts_with("HTTP/1.1 200"),
        "scrape failed: {status}"
    );
    ensure!(
        !head
            .to_ascii_lowercase()
            .contains("transfer-encoding: chunked"),
        "unexpected chunked response"
    );
    Ok(body.to_owned())
}

/// The value of one series (name with labels, exactly as exported).
fn sample(body: &str, series: &str) -> Result<f64> {
    let line = body
        .lines()
        .find(|l| {
            l.strip_prefix(series)
                .is_some_and(|rest| rest.starts_with(' '))
        })
        .with_context(|| format!("{series} not exported"))?;
    let value = line[series.len()..].trim();
    value
        .parse()
        .with_context(|| format!("{series} has value {value:?}"))
}
