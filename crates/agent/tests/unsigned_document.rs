//! A job document the real server never sends: a firmware file with no signature, or one that
//! is not base64 DER. `ferrota-server`'s `create_ota` refuses both, so the agent's tests against
//! the real services (`crates/lab/tests/agent_*.rs`) cannot produce them; AWS (or another
//! service) might, and the agent must refuse such a job before downloading a byte. So this one
//! case runs here on a fixture: a service that answers `$next/get` with that document and
//! records what the device publishes (the agent crate must not build the server).

use std::time::Duration;

use ferrota_sim::harness::{AgentSettings, Sim};
use ferrota_sim::images::ota::{Spec, image};
use ferrota_sim::service::{JobsStreams, OtaFile};

/// One firmware job whose document carries `signature`; no stream behind it.
fn fixture(size: u32, signature: Option<String>) -> JobsStreams {
    let mut file = OtaFile::image(vec![], signature);
    file.size = size;
    let mut f = JobsStreams::new("job-nosig", "stream-nosig", vec![file]);
    f.serves_stream = false;
    f
}

#[test]
fn a_firmware_job_without_a_valid_signature_is_refused_before_the_download() {
    let v1 = image(Spec::new(1, 1));
    let v2 = image(Spec::new(2, 2));
    for sig in [None, Some("AAAA".to_string())] {
        let fixture = fixture(v2.file.len() as u32, sig.clone());
        let mut sim = Sim::start(fixture, &v1, 12, AgentSettings::default());
        assert!(
            sim.run_until(Duration::from_secs(60), |s| s.server.status.is_terminal()),
            "{sig:?}: {:?}",
            sim.server.updates
        );
        // Not a block asked for (so none sent), and the refusal names the signature.
        assert_eq!(sim.server.stream_requests, 0, "{sig:?}");
        assert!(
            sim.server
                .updates
                .last()
                .unwrap()
                .contains("0x000000e3: 0x00000000"),
            "{sig:?}: {:?}",
            sim.server.updates
        );
        assert_eq!(sim.running_version(), v1.spec.version.0);
    }
}
