//! Probe of `ferrota-fw-net` (QEMU `mps2-an500`, linked at 0, loaded with `-kernel`): brings the
//! network up, connects to a real `ferrota serve` through QEMU's user-mode network (TLS 1.3 with
//! the thing's client certificate, MQTT 3.1.1), asks AWS IoT Jobs for the next job and prints
//! what comes back, then the figures. The provisioning block is loaded at
//! [`live::PROVISION`] with `-device loader,file=prov.bin,addr=0x60860000`.
//!
//! Then three QoS 1 publishes of 5,000, 4,096 and 1 bytes to `$aws/things/<thing>/probe/
//! echo`, which the broker hands back to the probe's own subscription: each must come
//! back intact (`message <topic> <bytes> intact`); then `unsubscribed` from it.
//!
//! Lines: `boot <n>`, `net up`, `mqtt connected`, `subscribed <topic>`, `published <topic>`,
//! `message <topic> <bytes>`, `fig <name>=<value>`, `closed`; any failure is `error <step>
//! <NetError>` and a failing exit.
//!
//! Reconnects in one QEMU process, as the live board makes them after each reset: with
//! `-device loader,addr=0x60870004,data=N,data-len=4` the probe resets the system
//! (SYSRESETREQ) after each successful round trip until it has booted N times; the boot count
//! lives at [`BOOTS`] in PSRAM, which a system reset keeps (QEMU zeroes it only at start).

//!
//! # What the probe found about QEMU 7.2 (run with `run.sh`)
//!
//! * The LAN9118 of `mps2-an500` is at 0xa0000000 (`info mtree`), not 0x40200000 (AN385).
//! * slirp refuses a `guestfwd` on the gateway's own address (`host=`): "Conflicting/invalid
//!   host:port in guest forwarding rule". The probe's server address is 192.0.2.100.
//! * `guestfwd=tcp:IP:PORT-tcp:127.0.0.1:P` (a tcp chardev) connects once, when QEMU starts,
//!   and carries one guest connection: the second boot's TLS handshake fails (`error connect
//!   tls`). `guestfwd=tcp:IP:PORT-cmd:CMD` runs CMD per guest connection, its stdin/stdout
//!   the stream: `socat - TCP:127.0.0.1:P` and, without socat, `bash -c 'exec
//!   3<>/dev/tcp/127.0.0.1/P; cat <&3 & cat >&3'` both carried three boots in a row.
//! * `-icount shift=0` (sleep=on by default): works; the handshake is ~1.03 M busy ticks
//!   (41 M instructions) at every boot. Each reset's first SYN reuses the previous boot's port
//!   (nothing random before the network), QEMU still holds that connection and drops the SYN,
//!   so the link retries from another port after 1 s (`connect-ms` ~1,270 instead of ~70).
//! * `-icount shift=0,sleep=off`: works too, but emulated time runs ahead of real time while
//!   the board waits for the server (`connect-ms` 380–550 against ~70), so every network
//!   deadline in emulated milliseconds passes sooner in real time: keep sleep=on for the live
//!   run.

#![no_std]
#![no_main]

use ferrota_fw_board::{MappedFlash, clock, entry, exit, report, stack};
use ferrota_fw_net::{Link, NetError, Storage};
use ferrota_qemu_harness::live;
use ferrota_qemu_harness::provision::Provision;
use ferrota_qemu_harness::report::Line;
use static_cell::ConstStaticCell;

/// PSRAM word counting the probe's boots in this QEMU process.
const BOOTS: u32 = 0x6087_0000;
/// PSRAM word with the number of boots wanted (0 or 1: no reset), from a `-device loader`.
const WANTED: u32 = BOOTS + 4;

fn psram_word(addr: u32) -> u32 {
    // SAFETY: a word of PSRAM (QEMU machine RAM) past the provisioning block, used by no one
    // else; volatile because it must survive the reset.
    unsafe { core::ptr::read_volatile(addr as usize as *const u32) }
}

/// The network's buffers: a static (.bss), so the stack figure is the probe's own.
static STORAGE: ConstStaticCell<Storage<'static>> = ConstStaticCell::new(Storage::new());

fn fig(name: &str, v: u64) {
    let mut l = Line::new();
    l.push("fig ")
        .push(name)
        .push("=")
        .num(u32::try_from(v).unwrap_or(u32::MAX));
    report(l.as_bytes());
}

fn fail(step: &str, e: NetError) -> ! {
    let mut l = Line::new();
    l.push("error ").push(step).push(" ").push(e.name());
    report(l.as_bytes());
    exit(false)
}

fn topic(thing: &str, suffix: &str) -> Line {
    let mut l = Line::new();
    l.push("$aws/things/")
        .push(thing)
        .push("/jobs/")
        .push(suffix);
    l
}

#[entry]
fn main() -> ! {
    stack::paint();
    clock::start();
    let boot = psram_word(BOOTS) + 1;
    // SAFETY: as in `psram_word`.
    unsafe { core::ptr::write_volatile(BOOTS as usize as *mut u32, boot) };
    let mut l = Line::new();
    l.push("boot ").num(boot);
    report(l.as_bytes());
    let block = MappedFlash::new(live::PROVISION, live::PROVISION_MAX).bytes();
    let Some(p) = Provision::decode(block) else {
        report(b"error provision");
        exit(false)
    };
    let storage = STORAGE.take();
    let t0 = clock::now_ms();
    let mut link = Link::new(storage, &p).unwrap_or_else(|e| fail("net", e));
    report(b"net up");

    let busy = clock::busy_ticks();
    link.connect(clock::now_ms() + 60_000)
        .unwrap_or_else(|e| fail("connect", e));
    report(b"mqtt connected");
    let f = link.figures();
    fig("handshake-busy-ticks", f.handshake_busy_ticks);
    fig("handshake-ms", f.handshake_ms);
    fig("connect-ms", f.connect_ms);
    fig("connect-busy-ticks", clock::busy_ticks() - busy);

    let notify = topic(p.thing, "notify-next");
    let accepted = topic(p.thing, "$next/get/accepted");
    for t in [&notify, &accepted] {
        link.subscribe(t.as_str(), 1)
            .unwrap_or_else(|e| fail("subscribe", e));
        let mut l = Line::new();
        l.push("subscribed ").push(t.as_str());
        report(l.as_bytes());
    }
    let get = topic(p.thing, "$next/get");
    link.publish(get.as_str(), b"{}", 1)
        .unwrap_or_else(|e| fail("publish", e));
    let mut l = Line::new();
    l.push("published ").push(get.as_str());
    report(l.as_bytes());

    let mut answered = false;
    let until = clock::now_ms() + 20_000;
    while !answered && clock::now_ms() < until {
        link.poll(until, &mut |t: &str, payload: &[u8]| {
            let mut l = Line::new();
            l.push("message ")
                .push(t)
                .push(" ")
                .num(payload.len() as u32);
            report(l.as_bytes());
            answered |= t == accepted.as_str();
        })
        .unwrap_or_else(|e| fail("poll", e));
    }
    if !answered {
        fail("answer", NetError::Timeout);
    }
    // Large payloads both ways (the agent's 4 KB stream blocks and Jobs documents): the
    // broker echoes a QoS 1 publish to our own subscription; the bytes must come back intact.
    let mut echo = Line::new();
    echo.push("$aws/things/").push(p.thing).push("/probe/echo");
    link.subscribe(echo.as_str(), 1)
        .unwrap_or_else(|e| fail("subscribe", e));
    let mut payload = [0u8; 5000];
    for (i, b) in payload.iter_mut().enumerate() {
        *b = (i % 251) as u8;
    }
    let sizes = [5000usize, 4096, 1];
    for &n in &sizes {
        link.publish(echo.as_str(), &payload[..n], 1)
            .unwrap_or_else(|e| fail("publish", e));
    }
    let mut echoed = 0;
    let until = clock::now_ms() + 20_000;
    while echoed < sizes.len() && clock::now_ms() < until {
        link.poll(until, &mut |t: &str, m: &[u8]| {
            let intact = m == &payload[..m.len()];
            let mut l = Line::new();
            l.push("message ").push(t).push(" ").num(m.len() as u32);
            l.push(if intact { " intact" } else { " CORRUPT" });
            report(l.as_bytes());
            if t == echo.as_str() && intact && m.len() == sizes[echoed.min(sizes.len() - 1)] {
                echoed += 1;
            }
        })
        .unwrap_or_else(|e| fail("poll", e));
    }
    if echoed < sizes.len() {
        fail("echo", NetError::Timeout);
    }
    link.unsubscribe(echo.as_str())
        .unwrap_or_else(|e| fail("unsubscribe", e));
    report(b"unsubscribed");
    link.flush(clock::now_ms() + 10_000)
        .unwrap_or_else(|e| fail("flush", e));
    fig("acked", u64::from(link.figures().acked));
    // With a short keep-alive (a test provisioning), stay idle for three of them: the link
    // must ping and the server keep the session.
    if (1..=5).contains(&p.keep_alive) {
        let until = clock::now_ms() + 3_000 * u64::from(p.keep_alive);
        while clock::now_ms() < until {
            link.poll(until, &mut |_: &str, _: &[u8]| {})
                .unwrap_or_else(|e| fail("idle", e));
        }
        fig("pings", u64::from(link.figures().pings));
    }
    link.close();
    report(b"closed");
    fig("total-ms", clock::now_ms() - t0);
    fig("busy-ticks", clock::busy_ticks());
    fig("stack", u64::from(stack::high_water()));
    fig("storage", core::mem::size_of::<Storage<'static>>() as u64);
    fig("link", core::mem::size_of::<Link<'static>>() as u64);
    if boot < psram_word(WANTED) {
        report(b"reset");
        cortex_m::peripheral::SCB::sys_reset();
    }
    exit(true)
}
