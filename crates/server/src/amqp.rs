//! Worker mode on a RabbitMQ cluster: the Jobs, Streams and Shadow services of several
//! Ferrota workers share the devices' requests as competing consumers of one replicated queue.
//!
//! ```text
//!  devices ─MQTT/TLS─▶ RabbitMQ node 1 ┐            ┌─ worker 1 (AMQP consumer) ─┐
//!  devices ─MQTT/TLS─▶ RabbitMQ node 2 ├ amq.topic ─▶ queue ferrota.requests      ├─ PostgreSQL
//!  devices ─MQTT/TLS─▶ RabbitMQ node 3 ┘  (quorum)  └─ worker 2 (AMQP consumer) ─┘
//! ```
//!
//! * RabbitMQ's MQTT plugin publishes every device PUBLISH to the `amq.topic` exchange with
//!   the topic as routing key (`/` read as `.`). Each worker declares the durable **quorum**
//!   queue [`QUEUE`] (replicated on every node: it survives one node of three) bound to the
//!   request topics ([`crate::bridge::REQUEST_FILTERS`], `+` as `*`), and consumes from it.
//!   RabbitMQ hands each request to one consumer: the workers share the load.
//! * A request is acknowledged after the services committed it ([`services::on_publish`]);
//!   a worker that dies first leaves it unacknowledged, and RabbitMQ gives it to another
//!   worker. A store failure rejects it back to the queue (retried after a pause).
//! * Replies, notifications and stream blocks are published to `amq.topic` with the topic as
//!   routing key; the MQTT plugin delivers them to the devices subscribed, on whatever node.
//! * Who may publish or subscribe to what is decided by Ferrota through RabbitMQ's HTTP auth
//!   backend ([`crate::broker_auth`]); the worker itself logs in as an internal RabbitMQ user.
//! * One connection per worker, to the first node of its list; after a loss it is re-made to
//!   the next node of the list (a dead node is not waited for), with a back-off of 100 ms
//!   doubling to 5 s once every node was tried.
//! * Requests are handled concurrently, each on a task of its own, at most `prefetch` at once
//!   (RabbitMQ hands no more unacknowledged): a request waiting on the file store or the
//!   database does not hold up the others. Two requests of one device may so be handled in
//!   either order, as by two workers; the Jobs service applies a status update that lost a
//!   race to the execution as it is then ([`crate::jobs`]), and a device orders its own
//!   updates by waiting for each answer.

use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use futures_lite::StreamExt;
use lapin::options::{
    BasicAckOptions, BasicConsumeOptions, BasicNackOptions, BasicPublishOptions, BasicQosOptions,
    ConfirmSelectOptions, QueueBindOptions, QueueDeclareOptions,
};
use lapin::types::{AMQPValue, FieldTable};
use lapin::{BasicProperties, Channel, Connection, ConnectionProperties};
use rumqttc::QoS;
use tokio::sync::{mpsc, watch};

use crate::bridge::REQUEST_FILTERS;
use crate::broker::Broker;
use crate::context::Outbound;
use crate::services::{self, Outcome};

/// The queue every worker consumes from.
pub const QUEUE: &str = "ferrota.requests";

/// The exchange RabbitMQ's MQTT plugin publishes to and delivers from.
pub const EXCHANGE: &str = "amq.topic";

/// How to reach the cluster.
#[derive(Debug, Clone)]
pub struct Amqp {
    /// `amqp://user:password@host:port/vhost` (`%2f` for `/`), or `amqps://…`: the cluster's
    /// nodes, tried in order, the next after a loss (at least one).
    pub urls: Vec<String>,
    /// How many unacknowledged requests RabbitMQ hands this worker at once.
    pub prefetch: u16,
}

/// The routing key RabbitMQ's MQTT plugin uses for `topic` (`/` becomes `.`). AWS's thing
/// names, job ids and stream ids hold no `.`, so the mapping is one to one on our topics.
pub fn routing_key(topic: &str) -> String {
    topic.replace('/', ".")
}

/// The MQTT topic of a routing key (the way back).
pub fn topic_of(routing_key: &str) -> String {
    routing_key.replace('.', "/")
}

/// The binding keys of the request queue: the request filters with `+` as `*`.
pub fn binding_keys() -> Vec<String> {
    REQUEST_FILTERS
        .iter()
        .map(|f| routing_key(f).replace('+', "*"))
        .collect()
}

/// What the services publish, queued for the publishing task (whose channel may be
/// reconnecting). A full queue drops the message with a warning, as a full MQTT client
/// queue does ([`crate::bridge`]): the device asks again.
struct Sink(mpsc::Sender<Msg>);

impl Outbound for Sink {
    fn publish(&self, topic: &str, payload: Bytes, qos: QoS) {
        if self.0.try_send((topic.to_string(), payload, qos)).is_err() {
            tracing::warn!(topic, "AMQP publish queue full: message dropped");
        }
    }
}

/// Runs the services as a consumer of the cluster until `shutdown` resolves (see the module
/// docs). Fails at once only if the broker already has an outbound sink.
pub async fn run(
    broker: Arc<Broker>,
    cfg: Amqp,
    shutdown: impl std::future::Future<Output = ()>,
) -> Result<(), String> {
    let (tx, rx) = mpsc::channel(PUBLISH_QUEUE);
    let room = tx.clone();
    if !broker.set_outbound(Arc::new(Sink(tx))) {
        return Err("the broker already has an outbound sink".into());
    }
    let (chan_tx, chan_rx) = watch::channel::<Option<Channel>>(None);
    let publisher = tokio::spawn(publish_loop(rx, chan_rx));
    let (stop_tx, stop_rx) = watch::channel(false);
    let consume = async {
        let mut backoff = Duration::from_millis(100);
        let n = cfg.urls.len().max(1);
        // Failures in a row: the first `n` move through the list without a pause.
        let mut failed = 0usize;
        let mut node = 0usize;
        loop {
            let url = cfg.urls.get(node % n).map_or("", String::as_str);
            match session(&broker, url, cfg.prefetch, &room, &chan_tx, stop_rx.clone()).await {
                Ok(true) => break,
                Ok(false) => {
                    backoff = Duration::from_millis(100);
                    failed = 0;
                }
                Err(e) => {
                    tracing::warn!(node = node % n, error = %e, "AMQP connection lost; trying the next node");
                    failed += 1;
                }
            }
            let _ = chan_tx.send(None);
            node += 1;
            if failed >= n {
                tokio::time::sleep(backoff).await;
                backoff = (backoff * 2).min(Duration::from_secs(5));
            } else {
                tokio::time::sleep(Duration::from_millis(50)).await;
            }
        }
    };
    tokio::pin!(consume);
    tokio::select! {
        _ = shutdown => {
            // Close the connection (RabbitMQ gives what this worker held unacknowledged to
            // the others), unless it hangs.
            let _ = stop_tx.send(true);
            let _ = tokio::time::timeout(Duration::from_secs(5), &mut consume).await;
        }
        _ = &mut consume => {}
    }
    publisher.abort();
    Ok(())
}

/// One connection: declare, bind, consume until the connection fails (`Ok(false)`) or `stop`
/// turns true (`Ok(true)`: the connection is closed first).
async fn session(
    broker: &Arc<Broker>,
    url: &str,
    prefetch: u16,
    room: &mpsc::Sender<Msg>,
    chan_tx: &watch::Sender<Option<Channel>>,
    mut stop: watch::Receiver<bool>,
) -> Result<bool, lapin::Error> {
    let conn = Connection::connect(
        url,
        ConnectionProperties::default().with_connection_name("ferrota-worker".into()),
    )
    .await?;
    let ch = conn.create_channel().await?;
    ch.basic_qos(prefetch.max(1), BasicQosOptions::default())
        .await?;
    let mut args = FieldTable::default();
    args.insert(
        "x-queue-type".into(),
        AMQPValue::LongString("quorum".into()),
    );
    ch.queue_declare(
        QUEUE.into(),
        QueueDeclareOptions {
            durable: true,
            ..QueueDeclareOptions::default()
        },
        args,
    )
    .await?;
    for key in binding_keys() {
        ch.queue_bind(
            QUEUE.into(),
            EXCHANGE.into(),
            key.as_str().into(),
            QueueBindOptions::default(),
            FieldTable::default(),
        )
        .await?;
    }
    let publish_channel = conn.create_channel().await?;
    publish_channel
        .confirm_select(ConfirmSelectOptions::default())
        .await?;
    let _ = chan_tx.send(Some(publish_channel));
    let mut consumer = ch
        .basic_consume(
            QUEUE.into(),
            "".into(),
            BasicConsumeOptions::default(),
            FieldTable::default(),
        )
        .await?;
    tracing::info!(queue = QUEUE, "consuming device requests from the cluster");
    // Each request on a task of its own: a request waiting on a slow store or file store does
    // not hold up the others. RabbitMQ hands this worker at most `prefetch` unacknowledged
    // requests, which bounds the tasks.
    let mut tasks = tokio::task::JoinSet::new();
    loop {
        let next = tokio::select! {
            d = consumer.next() => Some(d),
            // (The guard `wait_for` returns is dropped at once: it must not live across the
            // close below.)
            r = stop.wait_for(|s| *s) => { drop(r); None }
            Some(_) = tasks.join_next(), if !tasks.is_empty() => continue,
        };
        let Some(next) = next else {
            // What is being handled finishes (and is acknowledged) first, unless it hangs.
            let _ = tokio::time::timeout(Duration::from_secs(4), async {
                while tasks.join_next().await.is_some() {}
            })
            .await;
            let _ = conn.close(200, "worker stopping".into()).await;
            return Ok(true);
        };
        let Some(d) = next else { break };
        let d = d?;
        // Back-pressure: while the broker takes what this worker publishes more slowly than it
        // is produced (a stream request makes up to 32 blocks), no new request starts; the
        // requests wait in RabbitMQ's queue instead of their answers in memory.
        while room.capacity() < PUBLISH_QUEUE / 2 {
            tokio::time::sleep(Duration::from_millis(2)).await;
        }
        let broker = broker.clone();
        tasks.spawn(async move {
            let topic = topic_of(d.routing_key.as_str());
            let out = match crate::bridge::thing_of(&topic) {
                // The thing stands in for the client id: RabbitMQ checked (by asking Ferrota)
                // that the publisher is this thing.
                Some(t) => services::on_publish(&broker.services, t, t, &topic, &d.data).await,
                None => Outcome::NotMine,
            };
            let r = if out == Outcome::Failed {
                // Not committed: back to the queue, after a pause so a failing store is not
                // spun on.
                tokio::time::sleep(Duration::from_millis(200)).await;
                d.nack(BasicNackOptions {
                    requeue: true,
                    ..BasicNackOptions::default()
                })
                .await
            } else {
                d.ack(BasicAckOptions::default()).await
            };
            if let Err(e) = r {
                // The connection is gone: RabbitMQ hands the request to another worker.
                tracing::debug!(topic, error = %e, "could not settle a request");
            }
        });
    }
    Ok(false)
}

/// What the services may have queued for publishing (answers, blocks, notifications) before
/// a new request waits: a request is taken only while at least half of it is free, so a full
/// queue (a message dropped) means a broker that stopped taking messages at all.
pub const PUBLISH_QUEUE: usize = 16_384;

/// Messages published and not yet confirmed by the broker, at most (a window, so that stream
/// blocks flow without a round trip each).
pub const CONFIRM_WINDOW: usize = 256;

/// Times a message the broker refused (nack) is published again before it is dropped.
pub const MAX_NACKS: u8 = 3;

type Msg = (String, Bytes, QoS);

/// Publishes what the services send on the current channel; waits while there is none.
///
/// The publish channel is in confirm mode: a message counts as sent when the broker has
/// confirmed it. What was published on a channel that failed before its confirm (the node
/// died, the connection dropped) is published again, in order, on the next channel, so a
/// committed reply or a rollout's notify-next is not lost with a broker node. The price: a
/// message the broker routed whose confirm was lost goes out twice (a device sees a reply or
/// block again, which the protocol tolerates); a worker killed before it published loses
/// what it had queued (the device's retry covers a reply; see docs/DEPLOY.md for
/// notifications).
async fn publish_loop(mut rx: mpsc::Receiver<Msg>, mut chan_rx: watch::Receiver<Option<Channel>>) {
    let mut retry: std::collections::VecDeque<(Msg, u8)> = std::collections::VecDeque::new();
    let mut unconfirmed: std::collections::VecDeque<(Msg, u8, lapin::PublisherConfirm)> =
        std::collections::VecDeque::new();
    loop {
        let ch = chan_rx.borrow_and_update().clone();
        let Some(ch) = ch else {
            if chan_rx.changed().await.is_err() {
                return;
            }
            continue;
        };
        // On this channel until it fails or is replaced.
        let (failed, replaced) = loop {
            if let Some((m, nacks)) = retry.pop_front() {
                match publish(&ch, &m).await {
                    Ok(c) => unconfirmed.push_back((m, nacks, c)),
                    Err(e) => {
                        retry.push_front((m, nacks));
                        break (e, false);
                    }
                }
                continue;
            }
            tokio::select! {
                biased;
                r = async {
                    match unconfirmed.front_mut() {
                        Some(f) => (&mut f.2).await,
                        None => std::future::pending().await,
                    }
                }, if !unconfirmed.is_empty() =>
                {
                    match r {
                        Ok(c) if !c.is_nack() => {
                            unconfirmed.pop_front();
                        }
                        Ok(_) => {
                            // Refused by the broker (e.g. the device's queue was on a node
                            // that died): again at the end, a few times, then dropped (the
                            // device asks again after it reconnects).
                            if let Some((m, nacks, _)) = unconfirmed.pop_front() {
                                if nacks < MAX_NACKS {
                                    retry.push_back((m, nacks + 1));
                                } else {
                                    tracing::warn!(topic = m.0, "AMQP publish refused {MAX_NACKS} times: dropped");
                                }
                            }
                        }
                        Err(e) => break (e.to_string(), false),
                    }
                }
                m = rx.recv(), if unconfirmed.len() < CONFIRM_WINDOW => {
                    let Some(m) = m else { return };
                    match publish(&ch, &m).await {
                        Ok(c) => unconfirmed.push_back((m, 0, c)),
                        Err(e) => {
                            retry.push_back((m, 0));
                            break (e, false);
                        }
                    }
                }
                r = chan_rx.changed() => {
                    if r.is_err() {
                        return;
                    }
                    break ("the connection was replaced".to_string(), true);
                }
            }
        };
        // Everything not confirmed goes out again, oldest first, on the next channel.
        let n = unconfirmed.len();
        for (m, nacks, _) in unconfirmed.drain(..).rev() {
            retry.push_front((m, nacks));
        }
        tracing::warn!(error = %failed, unconfirmed = n, "AMQP publish channel failed; waiting for a new one");
        // The session replaces the channel when it reconnects (returns at once if it did
        // already).
        if !replaced && chan_rx.changed().await.is_err() {
            return;
        }
    }
}

/// Publishes one message to [`EXCHANGE`] with its MQTT QoS for the plugin.
async fn publish(
    ch: &Channel,
    (topic, payload, qos): &Msg,
) -> Result<lapin::PublisherConfirm, String> {
    let mut headers = FieldTable::default();
    let q = if *qos == QoS::AtMostOnce { 0 } else { 1 };
    headers.insert("x-mqtt-publish-qos".into(), AMQPValue::ShortShortInt(q));
    let props = BasicProperties::default()
        .with_headers(headers)
        .with_delivery_mode(if q == 1 { 2 } else { 1 });
    ch.basic_publish(
        EXCHANGE.into(),
        routing_key(topic).as_str().into(),
        BasicPublishOptions::default(),
        payload,
        props,
    )
    .await
    .map_err(|e| e.to_string())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn topics_and_routing_keys_map_both_ways() {
        let t = "$aws/things/dev-1/jobs/$next/get";
        assert_eq!(routing_key(t), "$aws.things.dev-1.jobs.$next.get");
        assert_eq!(topic_of(&routing_key(t)), t);
        let keys = binding_keys();
        assert!(keys.contains(&"$aws.things.*.jobs.*.update".to_string()));
        assert_eq!(keys.len(), REQUEST_FILTERS.len());
    }
}
