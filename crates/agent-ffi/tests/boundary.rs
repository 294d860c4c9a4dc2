//! Bad input from C ends in its error code and leaves the agent as it was; every code has a
//! message.

mod common;

use std::ffi::CStr;
use std::ptr::{null, null_mut};

use common::{Board, CData, Mem, start};
use ferrota_agent_ffi::*;

/// Drains the transmits; returns their topics.
fn drain(agent: *mut FerrotaAgent) -> Vec<String> {
    let mut buf = vec![0u8; FERROTA_TRANSMIT_BUF_MIN];
    let mut topics = vec![];
    loop {
        let mut t = std::mem::MaybeUninit::<FerrotaTransmit>::uninit();
        // SAFETY: live agent, buffers valid.
        let st = unsafe {
            ferrota_agent_poll_transmit(agent, buf.as_mut_ptr(), buf.len(), t.as_mut_ptr())
        };
        if st == FerrotaStatus::FerrotaNone {
            return topics;
        }
        assert_eq!(st, FerrotaStatus::FerrotaOk);
        // SAFETY: written on OK.
        let t = unsafe { t.assume_init() };
        assert_eq!(t.topic[t.topic_len], 0, "NUL-terminated");
        topics.push(String::from_utf8(t.topic[..t.topic_len].to_vec()).unwrap());
    }
}

#[test]
fn strerror_names_every_code_and_unknown_ones() {
    for s in FerrotaStatus::ALL {
        // SAFETY: static NUL-terminated strings.
        let m = unsafe { CStr::from_ptr(ferrota_strerror(s as i32)) };
        assert!(!m.to_bytes().is_empty());
        assert_ne!(m.to_str().unwrap(), "unknown status", "{s:?}");
    }
    let mut all: Vec<_> = FerrotaStatus::ALL.iter().map(|s| *s as i32).collect();
    all.sort();
    all.dedup();
    assert_eq!(all.len(), FerrotaStatus::ALL.len(), "codes are distinct");
    for code in [-15, 2, i32::MIN, i32::MAX] {
        // SAFETY: as above.
        let m = unsafe { CStr::from_ptr(ferrota_strerror(code)) };
        assert_eq!(m.to_str().unwrap(), "unknown status");
    }
}

#[test]
fn init_refuses_bad_memory_and_config_and_the_block_stays_unusable() {
    let mut board = Board::new();
    let data = CData::new();
    let mut mem = Mem::new();
    let cfg = data.config(&board);
    let p = board.platform();
    let mut out = null_mut();
    let init = |mem: *mut std::ffi::c_void,
                len: usize,
                cfg: *const FerrotaConfig,
                p: *const FerrotaPlatform,
                out: *mut *mut FerrotaAgent| {
        // SAFETY: every non-null pointer is valid; bad ones are what is tested.
        unsafe { ferrota_agent_init(mem, len, cfg, p, 1_000_000, out) }
    };
    use FerrotaStatus::*;
    assert_eq!(
        init(null_mut(), FERROTA_AGENT_SIZE, &cfg, &p, &mut out),
        FerrotaErrNull
    );
    assert_eq!(
        init(mem.ptr(), FERROTA_AGENT_SIZE, null(), &p, &mut out),
        FerrotaErrNull
    );
    assert_eq!(
        init(mem.ptr(), FERROTA_AGENT_SIZE, &cfg, null(), &mut out),
        FerrotaErrNull
    );
    assert_eq!(
        init(mem.ptr(), FERROTA_AGENT_SIZE, &cfg, &p, null_mut()),
        FerrotaErrNull
    );
    assert_eq!(
        init(mem.ptr(), FERROTA_AGENT_SIZE - 1, &cfg, &p, &mut out),
        FerrotaErrBufferTooSmall
    );
    // SAFETY: one byte into a block of SIZE + 16 bytes.
    let odd = unsafe { mem.ptr().cast::<u8>().add(1) }.cast();
    assert_eq!(
        init(odd, FERROTA_AGENT_SIZE, &cfg, &p, &mut out),
        FerrotaErrAlignment
    );
    let no_cb = FerrotaPlatform { erase: None, ..p };
    assert_eq!(
        init(mem.ptr(), FERROTA_AGENT_SIZE, &cfg, &no_cb, &mut out),
        FerrotaErrNull
    );

    let bad = |f: &dyn Fn(&mut FerrotaConfig)| {
        let mut c = cfg;
        f(&mut c);
        c
    };
    let name_utf8 = [0xC3u8, 0x28];
    for (c, want) in [
        (bad(&|c| c.thing_name = null()), FerrotaErrNull),
        (bad(&|c| c.thing_name_len = 0), FerrotaErrInvalid),
        (bad(&|c| c.thing_name_len = 65), FerrotaErrInvalid),
        (
            bad(&|c| {
                c.thing_name = name_utf8.as_ptr();
                c.thing_name_len = 2
            }),
            FerrotaErrUtf8,
        ),
        (
            bad(&|c| {
                c.thing_name = b"a/b".as_ptr();
                c.thing_name_len = 3
            }),
            FerrotaErrConfig,
        ),
        (bad(&|c| c.boot_key = null()), FerrotaErrNull),
        (bad(&|c| c.code_signing_key_len = 3), FerrotaErrInvalid),
        (bad(&|c| c.code_signing_key = null()), FerrotaErrNull),
        (bad(&|c| c.running_bank = 2), FerrotaErrInvalid),
        (bad(&|c| c.block_size = 1000), FerrotaErrConfig),
        (bad(&|c| c.block_size = 128), FerrotaErrConfig),
        (bad(&|c| c.block_size = 256 * 1024), FerrotaErrConfig),
        (
            bad(&|c| c.requests_in_flight = FERROTA_REQUESTS_IN_FLIGHT_MAX + 1),
            FerrotaErrConfig,
        ),
        (bad(&|c| c.requests_in_flight = u32::MAX), FerrotaErrConfig),
        (bad(&|c| c.require_signed_metadata = 1), FerrotaErrConfig),
    ] {
        assert_eq!(init(mem.ptr(), FERROTA_AGENT_SIZE, &c, &p, &mut out), want);
    }
    // An unparsed key.
    // SAFETY: zeroed storage is a valid unparsed key.
    let blank: FerrotaBootKey = unsafe { std::mem::zeroed() };
    let c = bad(&|c| c.boot_key = &blank);
    assert_eq!(
        init(mem.ptr(), FERROTA_AGENT_SIZE, &c, &p, &mut out),
        FerrotaErrNotInitialized
    );
    // Failing callbacks: the running record cannot be read.
    unsafe extern "C" fn fail(
        _: *mut std::ffi::c_void,
        _: FerrotaArea,
        _: u32,
        _: *mut u8,
        _: usize,
    ) -> i32 {
        -1
    }
    let failing = FerrotaPlatform {
        read: Some(fail),
        ..p
    };
    assert_eq!(
        init(mem.ptr(), FERROTA_AGENT_SIZE, &cfg, &failing, &mut out),
        FerrotaErrFlash
    );

    // Nothing was initialised: the block is refused.
    let never = mem.ptr().cast::<FerrotaAgent>();
    // SAFETY: the block is ours; it was never initialised.
    assert_eq!(
        unsafe { ferrota_agent_handle_connected(never, 0) },
        FerrotaErrNotInitialized
    );
    assert!(out.is_null());
}

#[test]
fn calls_with_bad_arguments_fail_and_leave_the_agent_intact() {
    use FerrotaStatus::*;
    let mut board = Board::new();
    let data = CData::new();
    let mut mem = Mem::new();
    let agent = start(&mut mem, &mut board, &data, 1_000_000);
    let mut buf = vec![0u8; FERROTA_TRANSMIT_BUF_MIN];
    let mut t = std::mem::MaybeUninit::<FerrotaTransmit>::uninit();
    let mut ev = std::mem::MaybeUninit::<FerrotaEvent>::uninit();
    let mut us = 0u64;
    // SAFETY (whole block): the agent is live; the bad pointers are what is tested and are
    // refused before any use.
    unsafe {
        assert_eq!(
            ferrota_agent_handle_connected(null_mut(), 0),
            FerrotaErrNull
        );
        assert_eq!(ferrota_agent_handle_connected(agent, 2_000_000), FerrotaOk);
        // A short buffer: refused, nothing dequeued.
        assert_eq!(
            ferrota_agent_poll_transmit(
                agent,
                buf.as_mut_ptr(),
                FERROTA_TRANSMIT_BUF_MIN - 1,
                t.as_mut_ptr()
            ),
            FerrotaErrBufferTooSmall
        );
        assert_eq!(
            ferrota_agent_poll_transmit(agent, null_mut(), buf.len(), t.as_mut_ptr()),
            FerrotaErrNull
        );
        assert_eq!(
            ferrota_agent_poll_transmit(agent, buf.as_mut_ptr(), buf.len(), null_mut()),
            FerrotaErrNull
        );
        // Overlapping buffers: the payload buffer over `*out`, over the agent's block, and
        // `*out` inside the agent's block; refused, nothing dequeued.
        let mut big = vec![0u64; 1024];
        assert_eq!(
            ferrota_agent_poll_transmit(
                agent,
                big.as_mut_ptr().cast(),
                FERROTA_TRANSMIT_BUF_MIN,
                big.as_mut_ptr().add(8).cast()
            ),
            FerrotaErrInvalid
        );
        assert_eq!(
            ferrota_agent_poll_transmit(
                agent,
                agent.cast::<u8>().add(64),
                FERROTA_TRANSMIT_BUF_MIN,
                t.as_mut_ptr()
            ),
            FerrotaErrInvalid
        );
        assert_eq!(
            ferrota_agent_poll_transmit(
                agent,
                buf.as_mut_ptr(),
                buf.len(),
                agent.cast::<u8>().add(FERROTA_AGENT_SIZE - 8).cast()
            ),
            FerrotaErrInvalid
        );
        let misaligned = buf.as_mut_ptr().add(1).cast::<FerrotaTransmit>();
        assert_eq!(
            ferrota_agent_poll_transmit(agent, buf.as_mut_ptr(), buf.len(), misaligned),
            FerrotaErrAlignment
        );
        assert_eq!(ferrota_agent_poll_event(agent, null_mut()), FerrotaErrNull);
        assert_eq!(
            ferrota_agent_poll_timeout(agent, null_mut()),
            FerrotaErrNull
        );
        assert_eq!(ferrota_agent_stats(agent, null_mut()), FerrotaErrNull);
        assert_eq!(
            ferrota_agent_progress(agent, null_mut(), &mut 0),
            FerrotaErrNull
        );

        // Messages: null topic, bad UTF-8, null payload with a length.
        let topic = "$aws/things/thing-1/jobs/notify-next";
        assert_eq!(
            ferrota_agent_handle_message(agent, 3_000_000, null(), 5, null(), 0),
            FerrotaErrNull
        );
        let bad_topic = [b'$', 0xFF, 0xFE];
        assert_eq!(
            ferrota_agent_handle_message(agent, 3_000_000, bad_topic.as_ptr(), 3, null(), 0),
            FerrotaErrUtf8
        );
        assert_eq!(
            ferrota_agent_handle_message(agent, 3_000_000, topic.as_ptr(), topic.len(), null(), 4),
            FerrotaErrNull
        );
        // A topic or payload inside the agent's own block.
        assert_eq!(
            ferrota_agent_handle_message(agent, 3_000_000, agent.cast::<u8>(), 8, null(), 0),
            FerrotaErrInvalid
        );
        assert_eq!(
            ferrota_agent_handle_message(
                agent,
                3_000_000,
                topic.as_ptr(),
                topic.len(),
                agent.cast::<u8>().add(100),
                10
            ),
            FerrotaErrInvalid
        );
        // An empty payload is fine (and ignored by the agent).
        assert_eq!(
            ferrota_agent_handle_message(agent, 3_000_000, topic.as_ptr(), topic.len(), null(), 0),
            FerrotaOk
        );
        assert_eq!(
            ferrota_agent_self_test_result(agent, 3_000_000, 1),
            FerrotaOk
        );
        assert_eq!(ferrota_agent_progress(agent, &mut 0, &mut 0), FerrotaNone);
        let mut stats = FerrotaStats::default();
        assert_eq!(ferrota_agent_stats(agent, &mut stats), FerrotaOk);
        while ferrota_agent_poll_event(agent, ev.as_mut_ptr()) == FerrotaOk {}
        let _ = ferrota_agent_poll_timeout(agent, &mut us);
    }
    // The state is intact: the connect's operations are all still there, in order.
    let topics = drain(agent);
    assert!(
        topics.iter().any(|t| t.ends_with("jobs/notify-next")),
        "{topics:?}"
    );
    assert!(
        topics.iter().any(|t| t.ends_with("shadow/update")),
        "{topics:?}"
    );
    assert!(
        topics.iter().any(|t| t.ends_with("jobs/$next/get")),
        "{topics:?}"
    );
    // SAFETY: live agent; then the ended one is refused.
    unsafe {
        assert_eq!(ferrota_agent_deinit(agent), FerrotaOk);
        assert_eq!(ferrota_agent_deinit(agent), FerrotaErrNotInitialized);
        assert_eq!(
            ferrota_agent_handle_timeout(agent, 0),
            FerrotaErrNotInitialized
        );
        assert_eq!(
            ferrota_agent_poll_timeout(agent, &mut us),
            FerrotaErrNotInitialized
        );
    }
}
