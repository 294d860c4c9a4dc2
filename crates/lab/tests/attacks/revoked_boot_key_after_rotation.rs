//! Attack 11, a revoked boot key after a rotation (design #20 §5): once the fleet moved to
//! boot key K1 and root v2 revoked slot 0, an attacker holding the old boot key K0 (and even a
//! release key) gets no K0-signed image to run, by download or by debugger.

use super::*;
use crate::common::{cut_at, install, log};
use ferrota_agent::AgentEvent;
use ferrota_boot::dbm::{BankFault, BootReason, Dbm, Decision};
use ferrota_image::HardwareId;
use ferrota_sim::images::ota::{BOARD, FULL};
use ferrota_sim::keys::boot_ring;

/// Root v1 and root v2 revoking boot-key slot 0 (`revokedBootKeys = 0b1`).
fn revoking_setup() -> TrustSetup {
    TrustSetup::with_roots(vec![trust::root(1, 0), trust::root(2, 0b1)])
}

/// A Require-mode device as [`trusted_sim_with`] makes it, on a board provisioned with boot keys
/// K0 (slot 0) and K1 (slot 1) in SFlash (DBM configuration, key objects, S-HASH): what the
/// board's revocation (`boot_chain::revoke::apply`, which reads the slots from SFlash) needs.
fn two_slot_sim(seed: u64) -> Sim {
    use ferrota_sim::boot_chain::{Provisioning, provision_slots};
    use ferrota_sim::keys::{boot_key, boot_key_2};
    let mut sim = trusted_sim_with(seed, &revoking_setup());
    let dev = provision_slots(
        &Provisioning {
            key: boot_key().clone(),
            life_cycle: ferrota_t2g::LifeCycle::NormalProvisioned,
            hardware: HardwareId::new(BOARD),
        },
        &[boot_key_2().clone()],
    )
    .expect("provision K0 and K1");
    restart_on(&mut sim, dev);
    sim
}

/// Release v1.2, boot-signed with K1 (slot 1), seq 6, signed by root v2's release key, root v2
/// (revoking slot 0) integrated. A whole bank ([`FULL`]): the board's revocation guard
/// (`boot_chain::revoke::apply`) verifies every region of the running bank, CM7_1 included,
/// which the short test images leave out (it refuses with `ObjSizeOutsideRegion` then).
fn k1_release() -> FirmwareJob {
    signed_release(
        "k1",
        image(Spec::new(2, 2).boot_key_slot(1).len(FULL)),
        INSTALLED_SEQ + 1,
        trust::release_key_of(2),
        &[trust::root(2, 0b1)],
    )
}

fn v12() -> u32 {
    Spec::new(2, 2).version.0
}

/// A device on v1.1 (K0) with the K1 release started, stopped when the new image's self-test
/// starts (the next step is the confirmation, then the revocation).
fn at_self_test(seed: u64) -> Sim {
    let mut sim = two_slot_sim(seed);
    sim.add_job(k1_release());
    let started = sim.run_until(LIMIT, |s| {
        s.events
            .iter()
            .any(|e| matches!(e, AgentEvent::StartSelfTest { .. }))
    });
    assert!(started, "the K1 release never reached its self-test");
    sim
}

#[test]
fn revoked_boot_key_after_rotation() {
    // The rotation: v1.2 signed with K1 under root v2 installs; after the confirmation the
    // agent asks for slot 0's revocation and the board blows eFuse bit 0.
    let mut sim = two_slot_sim(1101);
    assert_eq!(sim.dev.efuse().revoked_boot_keys(), 0);
    sim.add_job(k1_release());
    succeeds(&mut sim, "k1", v12());
    assert!(
        sim.events
            .iter()
            .any(|e| matches!(e, AgentEvent::RevokeBootKeys { mask: 1 })),
        "no RevokeBootKeys {{ mask: 1 }}"
    );
    assert_eq!(sim.dev.efuse().revoked_boot_keys(), 0b1);
    assert_eq!(sim.running.unwrap().bank, Bank::Upper);

    // a) With a debugger: a K0-signed v1.3 programmed into the inactive (lower) bank and USER1
    // held (which asks the DBM for the lower bank). The DBM refuses its boot signature (slot 0
    // is revoked) and boots v1.2.
    install(&mut sim.dev, Bank::Lower, &image(Spec::new(3, 3)));
    {
        let dev = &mut sim.dev;
        dev.set_work_err_silent(true).unwrap();
        let dbm = Dbm::new(boot_ring(dev.efuse().revoked_boot_keys()))
            .efuse_floor(dev.rollback_counter())
            .hardware(HardwareId::new(BOARD))
            .user1(true);
        let read = dbm.read_log(&mut log(dev)).unwrap();
        let choice = read.choose(&mut dev.single_bank().unwrap(), &mut [0u8; 4096]);
        let boot = match choice.persist(&mut log(dev)).unwrap() {
            Decision::Boot(b) => b,
            Decision::Halt(h) => panic!("the DBM halted: {h:?}"),
        };
        assert_eq!(boot.bank, Bank::Upper);
        assert_eq!(boot.record.version.0, v12());
        assert!(
            matches!(
                boot.reason,
                BootReason::User1 {
                    lower_fault: Some(BankFault::Image(_))
                }
            ),
            "{:?}",
            boot.reason
        );
    }
    sim.reset_now();
    sim.run_until(Duration::from_secs(2), |_| false);
    assert_eq!(sim.running_version(), v12());

    // b) The attacker holds K0 and the release key: a K0-signed v1.3 with a genuine manifest.
    // The manifest passes; the CM0+ region's boot signature does not (slot 0 is revoked).
    // The agent's boot-key verifier is the ring of the eFuses at its start (the harness, as a
    // board, lends `boot_ring(revoked)`), so the revocation reaches the agent at its next start:
    // the board resets first. (Without that reset the running agent still takes K0 at the
    // precheck; the image is activated and the DBM refuses it at its trial boot.)
    sim.reset_now();
    sim.run_until(Duration::from_secs(2), |_| false);
    let before = Stopped::before(&sim);
    sim.add_job(signed_release(
        "k0",
        image(Spec::new(3, 3)),
        INSTALLED_SEQ + 2,
        trust::release_key_of(2),
        &[trust::root(2, 0b1)],
    ));
    before.check(&mut sim, "k0", &e3(1), When::During);

    // c) A power cut at every operation of the revocation, whole or torn. The revocation is
    // the last thing the board does after the confirmation (`RevokeBootKeys` follows
    // `Confirmed`), one eFuse blow per slot: its operations are the last ones before the bit
    // reads blown. The sweep takes them and the two before (the end of the confirmation), each
    // on a fresh run of the same seed (the runs are deterministic; a run downloads a whole
    // bank, so the sweep is kept to these). Every run boots v1.2, and the agent's next start
    // asks again and completes the revocation.
    const SWEEP: u64 = 3;
    let mut sim = at_self_test(1102);
    let first = sim.dev.op_count();
    let done = sim.run_until(LIMIT, |s| s.dev.efuse().revoked_boot_keys() == 0b1);
    assert!(done, "the revocation never happened");
    let last = sim.dev.op_count();
    assert!(
        last >= first + SWEEP,
        "{first}..{last}: fewer operations than swept"
    );
    let cuts: Vec<(u64, bool)> = (last - SWEEP..last)
        .flat_map(|op| [(op, false), (op, true)])
        .collect();
    // The runs are independent: one thread each.
    std::thread::scope(|scope| {
        for &(op, tear) in &cuts {
            scope.spawn(move || cut_during_revocation(op, tear, first));
        }
    });
}

/// One run of the sweep: the K1 release to its self-test, a power cut at `op` (torn or not),
/// then to the end; v1.2 must run with slot 0 revoked, also after a reset.
fn cut_during_revocation(op: u64, tear: bool, first: u64) {
    let mut sim = at_self_test(1102);
    assert_eq!(sim.dev.op_count(), first, "replay diverged");
    sim.cut_power_at_op(cut_at(op, op, tear));
    sim.run_until(LIMIT, |s| {
        s.dev.efuse().revoked_boot_keys() == 0b1 && s.server.is_terminal("k1")
    });
    sim.run_until(Duration::from_secs(5), |_| false);
    assert!(
        sim.power_cuts > 0,
        "cut at op {op} (tear {tear}): no cut happened"
    );
    assert_eq!(sim.running_version(), v12(), "cut at op {op} (tear {tear})");
    assert_eq!(
        sim.dev.efuse().revoked_boot_keys(),
        0b1,
        "cut at op {op} (tear {tear}): revocation not completed"
    );
    assert_eq!(state(&sim.dev).trial, None, "cut at op {op} (tear {tear})");
    sim.reset_now();
    sim.run_until(Duration::from_secs(2), |_| false);
    assert_eq!(
        sim.running_version(),
        v12(),
        "cut at op {op}: after a reset"
    );
}
