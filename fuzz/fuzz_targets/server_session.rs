//! Feeds arbitrary bytes to one MQTT session of `ferrota-server` over an in-memory pipe, as
//! the thing `fuzz` (registered in an in-memory store, with one queued job so the Jobs and
//! Streams paths have something to find). The first input byte picks whether a valid CONNECT
//! is sent first (most inputs then reach the connected state, where any order of SUBSCRIBE,
//! PUBLISH to Jobs/Streams topics, PUBACK, PINGREQ… is exercised) or the bytes start the
//! session raw. The client side is then closed, so every session ends by itself: no real-time
//! wait per input. Nothing may panic or hang; the session must end with a `SessionEnd`.
#![no_main]

use std::sync::{Arc, OnceLock};

use bytes::BytesMut;
use ferrota_server::store::{DirBlobStore, Job, JobState, SqliteStore, Store, Thing};
use ferrota_server::{Broker, Identity, Limits, Policy, serve_connection};
use libfuzzer_sys::fuzz_target;
use rumqttc::{Connect, Packet};
use tokio::io::{AsyncReadExt, AsyncWriteExt};

struct World {
    rt: tokio::runtime::Runtime,
    broker: Arc<Broker>,
}

fn world() -> &'static World {
    static W: OnceLock<World> = OnceLock::new();
    W.get_or_init(|| {
        let rt = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .expect("runtime");
        let broker = rt.block_on(async {
            let store = SqliteStore::memory().await.expect("store");
            store
                .create_thing(&Thing {
                    name: "fuzz".into(),
                    groups: vec![],
                    created_at: 0,
                })
                .await
                .expect("thing");
            // The job document is not read by the Jobs API itself: `{}` is enough.
            let job = Job {
                job_id: "job-1".into(),
                document: "{}".into(),
                state: JobState::InProgress,
                ota_update_id: None,
                created_at: 0,
                in_progress_timeout_minutes: None,
            };
            store
                .create_job(&job, &["fuzz".into()])
                .await
                .expect("job");
            let dir = std::env::temp_dir().join(format!("ferrota-fuzz-{}", std::process::id()));
            let blobs = DirBlobStore::new(dir).expect("blobs");
            Broker::new(
                Arc::new(store),
                Arc::new(blobs),
                Policy::with_extra(&["fuzz/#".into()], &["fuzz/#".into()]),
                Limits::default(),
            )
        });
        World { rt, broker }
    })
}

fuzz_target!(|data: &[u8]| {
    let Some((&mode, rest)) = data.split_first() else {
        return;
    };
    let w = world();
    w.rt.block_on(async {
        let (client, server) = tokio::io::duplex(1 << 16);
        let id = Identity {
            thing: "fuzz".into(),
            cert_id: None,
        };
        let session = tokio::spawn(serve_connection(w.broker.clone(), server, id));
        let mut input = BytesMut::new();
        if mode & 1 == 0 {
            let mut c = Connect::new("fuzz");
            c.keep_alive = 60;
            Packet::Connect(c)
                .write(&mut input, usize::MAX)
                .expect("encode CONNECT");
        }
        input.extend_from_slice(rest);
        let (mut r, mut wr) = tokio::io::split(client);
        // Read whatever the server answers while writing, so neither side blocks on a full pipe.
        let drain = tokio::spawn(async move {
            let mut sink = Vec::new();
            let _ = r.read_to_end(&mut sink).await;
        });
        let _ = wr.write_all(&input).await;
        let _ = wr.shutdown().await;
        let _end = session.await.expect("the session task panicked");
        let _ = drain.await;
    });
});
