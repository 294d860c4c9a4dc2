mod common;

use std::time::Duration;

use common::image::{Spec, image};
use common::*;
use ferrota_proto::job::JobStatus;

#[test]
fn whole_update_succeeds() {
    let v1 = image(Spec::new(1, 1));
    let v2 = image(Spec::new(2, 2));
    let mut sim = Sim::new(&v1, 1);
    sim.add_job(job("job-1", v2.clone()));
    assert!(sim.run_job("job-1", Duration::from_secs(120)));
    let st = sim.statuses("job-1");
    println!("{st:#?}");
    assert_eq!(sim.server.job("job-1").status, JobStatus::Succeeded);
    assert_eq!(sim.running_version(), v2.spec.version.0);
}
