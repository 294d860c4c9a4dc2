//! Scenario `activation`: simulated time from "download verified" to "new image running", and
//! from "self-test failed" to "old image running", beside a copy-into-slot update (MCUboot
//! overwrite) and a swap through scratch of the same image on the same timing model.
//!
//! The measurement is [`ferrota_lab::cost::compare`] (see there for what each side does);
//! it is deterministic (simulated flash time, not host time), so `--short` runs it whole.

use ferrota_lab::cost::{Comparison, Cost, fmt_time};
use serde_json::json;

use crate::report::{Report, Table, Target};
use crate::{BenchError, Options, Scenario};

/// Speed-up over the cheapest single-bank way the issue set.
pub const TARGET_SPEEDUP: f64 = 100.0;

fn cost_json(c: &Cost) -> serde_json::Value {
    json!({ "flash_ops": c.ops, "simulated_secs": c.time.as_secs_f64() })
}

/// Runs the scenario.
pub fn run(opts: &Options) -> Result<Report, BenchError> {
    opts.say("activation: activation, rollback, copy and swap on the ferrota-t2g timing model");
    let c: Comparison = ferrota_lab::cost::compare()
        .map_err(|e| BenchError::new(Scenario::Activation, e.to_string()))?;
    let mut table = Table::new(["action", "flash ops", "simulated time", "vs Ferrota"]);
    let mut row = |name: &str, x: &Cost, vs: Option<&Cost>| {
        table.row([
            name.to_string(),
            x.ops.to_string(),
            fmt_time(x.time),
            vs.map_or("1×".into(), |f| format!("{:.0}×", x.ratio(f))),
        ])
    };
    row(
        "Ferrota activation (TRIAL + first trial boot)",
        &c.activation,
        None,
    );
    row(
        "copy into a fixed slot (erase + program every row)",
        &c.copy,
        Some(&c.activation),
    );
    row(
        "swap through scratch (3 erase+program passes)",
        &c.swap,
        Some(&c.activation),
    );
    row("Ferrota rollback (REVERTED + next boot)", &c.rollback, None);
    row(
        "copy-based rollback (copy the old image back)",
        &c.copy,
        Some(&c.rollback),
    );
    row(
        "swap-based rollback (swap back)",
        &c.swap_back,
        Some(&c.rollback),
    );
    row(
        "Ferrota confirm (CONFIRMED + eFuse counter bits)",
        &c.confirm,
        None,
    );
    let act = c.copy.ratio(&c.activation).min(c.swap.ratio(&c.activation));
    let rb = c
        .copy
        .ratio(&c.rollback)
        .min(c.swap_back.ratio(&c.rollback));
    // Deterministic: even the short run may state the result.
    let targets = vec![
        Target::new(
            "activation vs cheapest single-bank way",
            format!("≥ {TARGET_SPEEDUP:.0}×"),
            format!("{act:.0}×"),
            act >= TARGET_SPEEDUP,
            false,
        ),
        Target::new(
            "rollback vs cheapest single-bank way",
            format!("≥ {TARGET_SPEEDUP:.0}×"),
            format!("{rb:.0}×"),
            rb >= TARGET_SPEEDUP,
            false,
        ),
    ];
    Ok(Report {
        scenario: Scenario::Activation,
        title: "activation and rollback beside copy-into-slot".into(),
        short: opts.short,
        table,
        targets,
        notes: vec![
            format!(
                "Image: {} bytes; simulated flash time on ferrota-t2g's timing model (its \
                 defaults are documented assumptions in ferrota_t2g::Timing).",
                c.image_bytes
            ),
            "Signature verification and the download are the same work in both designs and \
             are left out of both sides."
                .into(),
        ],
        data: json!({
            "image_bytes": c.image_bytes,
            "activation": cost_json(&c.activation),
            "rollback": cost_json(&c.rollback),
            "confirm": cost_json(&c.confirm),
            "copy": cost_json(&c.copy),
            "swap": cost_json(&c.swap),
            "swap_back": cost_json(&c.swap_back),
            "speedup_activation": act,
            "speedup_rollback": rb,
        }),
    })
}
