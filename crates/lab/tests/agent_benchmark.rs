//! The benchmark's targets (issue part 4), asserted: simulated time is deterministic (the agent
//! against the real server's services in virtual time, `ferrota_lab::sim_service`).

use crate::common;

#[test]
fn download_is_10x_faster_without_loss_and_50x_with_1_percent_loss() {
    let (table, up0, up1) = common::official::table();
    println!("{table}");
    assert!(up0 >= 10.0, "{up0:.1}× without loss\n{table}");
    assert!(up1 >= 50.0, "{up1:.1}× with 1 % loss\n{table}");
}
