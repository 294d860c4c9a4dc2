//! Issue 13, item 6: a job whose file type is not firmware is ended by the application's
//! handler (default: declined), so a firmware job queued behind it still runs.

use std::time::Duration;

use ferrota_agent::AppOutcome;
use ferrota_device::board::{AppJob, AppJobHandler, BoardEvent};
use ferrota_lab::demo::{self, World};
use ferrota_lab::lab;
use ferrota_server::admin::{CreateOtaUpdate, OtaFile};

/// Creates OTA update `id` for the demo thing with `v1.1.0`'s bytes as file type `file_type`.
async fn other_file_update(w: &World, id: &str, file_type: u8) {
    let img = &w.images.v1_1;
    let sha = w.lab.admin.put_file(&img.file).await.expect("upload");
    let req = CreateOtaUpdate::new(id).thing(demo::THING).file(
        OtaFile::new("settings.bin", sha, &img.signature)
            .file_type(Some(file_type))
            .certificate_name("code-signing.crt.pem"),
    );
    w.lab.admin.create_ota(&req).await.expect("OTA update");
}

async fn first_boot() -> World {
    let mut w = demo::setup(true).await.expect("set-up");
    let r = demo::step1_first_boot(&mut w).await.expect("step 1");
    assert!(r.ok, "{}", r.outcome);
    w
}

/// Both jobs end and the firmware job behind the non-firmware one runs to SUCCEEDED.
async fn other_then_firmware(mut w: World, expect_other: &str) {
    other_file_update(&w, "settings", 7).await;
    w.lab
        .update("fw_v1_1_0", &[demo::THING], &w.images.v1_1)
        .await
        .expect("firmware update");
    let (ev, met) = lab::drive(&mut w.board, Duration::from_secs(60), |e| {
        e.last() == Some(&BoardEvent::JobSucceeded) && e.contains(&BoardEvent::Activated)
    })
    .await
    .expect("board");
    assert!(met, "the firmware job did not run: {ev:?}");
    let (s, d) = w
        .lab
        .terminal_status("settings", demo::THING)
        .await
        .unwrap();
    assert_eq!(s, expect_other, "{d:?}");
    let (s, d) = w
        .lab
        .terminal_status("fw_v1_1_0", demo::THING)
        .await
        .unwrap();
    assert_eq!(s, "SUCCEEDED", "{d:?}");
    w.lab.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_non_firmware_job_is_declined_by_default_and_the_next_firmware_job_runs() {
    let w = first_boot().await;
    other_then_firmware(w, "FAILED").await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_application_handler_decides_how_a_non_firmware_job_ends() {
    let mut w = first_boot().await;
    let mut o = w.board.opts.clone();
    o.app_jobs = AppJobHandler(std::sync::Arc::new(|j| match j {
        AppJob::File { file_type: 7, .. } => AppOutcome::Succeeded,
        _ => AppOutcome::Declined,
    }));
    w.board.set_options(o);
    other_then_firmware(w, "SUCCEEDED").await;
}
