//! The short form of a gated wave, `NAME:SIZE[:OPTION]…`, that the CLI's `--wave` and the
//! console's rollout form both take, parsed into the API's [`Wave`] (the server then checks it
//! as it checks `rolloutWaves` in JSON). One parser, so both read a wave the same way.

use crate::jobconfig::Wave;

/// What the short form looks like, for error messages and help texts.
pub const WAVE_SPEC_HELP: &str = "NAME:SIZE[:OPTION]…, SIZE N% | N | group=GROUP, OPTION \
     success=P | errors=P% | errors=N | approve; e.g. canary:1%:success=95:errors=5%:approve";

/// Parses one wave, `NAME:SIZE[:OPTION]…`: SIZE is `N%` (cumulative share of the targets), `N`
/// (this many more) or `group=GROUP`; OPTION is `success=P`, `errors=P%`, `errors=N` or
/// `approve`. The error says what is wrong and shows the form.
pub fn parse_wave(spec: &str) -> Result<Wave, String> {
    let bad = |why: String| format!("{why} (expected {WAVE_SPEC_HELP})");
    let mut parts = spec.split(':');
    let name = parts.next().unwrap_or_default().trim();
    if name.is_empty() {
        return Err(bad("the name is empty".into()));
    }
    let size = parts
        .next()
        .map(str::trim)
        .ok_or_else(|| bad("no SIZE".into()))?;
    let mut w = Wave {
        name: Some(name.to_string()),
        ..Wave::default()
    };
    let number = |s: &str, what: &str| -> Result<f64, String> {
        match s.parse::<f64>() {
            Ok(v) if v.is_finite() => Ok(v),
            _ => Err(bad(format!("{what} {s:?} is not a number"))),
        }
    };
    if let Some(p) = size.strip_suffix('%') {
        w.percentage = Some(number(p, "percentage")?);
    } else if let Some(g) = size.strip_prefix("group=") {
        w.thing_group = Some(g.to_string());
    } else {
        w.count = Some(
            size.parse()
                .map_err(|_| bad(format!("SIZE {size:?} is not N%, N or group=GROUP")))?,
        );
    }
    for opt in parts.map(str::trim) {
        if opt == "approve" {
            w.requires_approval = true;
        } else if let Some(p) = opt.strip_prefix("success=") {
            let p = p.strip_suffix('%').unwrap_or(p);
            w.success_threshold_percentage = Some(number(p, "success")?);
        } else if let Some(e) = opt.strip_prefix("errors=") {
            if let Some(p) = e.strip_suffix('%') {
                w.error_threshold_percentage = Some(number(p, "errors")?);
            } else {
                w.error_threshold_count = Some(
                    e.parse()
                        .map_err(|_| bad(format!("errors {e:?} is not P% or a count")))?,
                );
            }
        } else {
            return Err(bad(format!("unknown option {opt:?}")));
        }
    }
    Ok(w)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_short_form_reads_every_size_and_option() {
        let w = parse_wave("canary:5%:success=95:errors=5%:approve").unwrap();
        assert_eq!(w.name.as_deref(), Some("canary"));
        assert_eq!(w.percentage, Some(5.0));
        assert_eq!(w.success_threshold_percentage, Some(95.0));
        assert_eq!(w.error_threshold_percentage, Some(5.0));
        assert!(w.requires_approval);
        let w = parse_wave("rest:10:errors=3").unwrap();
        assert_eq!((w.count, w.error_threshold_count), (Some(10), Some(3)));
        let w = parse_wave("lab:group=lab").unwrap();
        assert_eq!(w.thing_group.as_deref(), Some("lab"));
    }

    #[test]
    fn a_bad_wave_is_named_with_the_form() {
        for (spec, why) in [
            (":5%", "the name is empty"),
            ("a", "no SIZE"),
            ("a:x", "SIZE \"x\" is not N%"),
            ("a:5%:success=lots", "success \"lots\" is not a number"),
            ("a:5%:maybe", "unknown option \"maybe\""),
            ("a:NaN%", "percentage \"NaN\" is not a number"),
        ] {
            let e = parse_wave(spec).unwrap_err();
            assert!(e.starts_with(why), "{spec}: {e}");
            assert!(e.contains("expected NAME:SIZE"), "{e}");
        }
    }
}
