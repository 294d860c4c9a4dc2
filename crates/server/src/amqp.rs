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
//! * One connection per worker, re-made after a loss with a back-off of 100 ms doubling to
//!   5 s; requests are handled one at a time in arrival order (as [`crate::bridge`]).

use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use futures_lite::StreamExt;
use lapin::options::{
    BasicAckOptions, BasicConsumeOptions, BasicNackOptions, BasicPublishOptions, BasicQosOptions,
    QueueBindOptions, QueueDeclareOptions,
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
    /// `amqp://user:password@host:port/vhost` (`%2f` for `/`), or `amqps://…`.
    pub url: String,
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
struct Sink(mpsc::Sender<(String, Bytes, QoS)>);

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
    let (tx, rx) = mpsc::channel(65_536);
    if !broker.set_outbound(Arc::new(Sink(tx))) {
        return Err("the broker already has an outbound sink".into());
    }
    let (chan_tx, chan_rx) = watch::channel::<Option<Channel>>(None);
    let publisher = tokio::spawn(publish_loop(rx, chan_rx));
    let (stop_tx, stop_rx) = watch::channel(false);
    let consume = async {
        let mut backoff = Duration::from_millis(100);
        loop {
            match session(&broker, &cfg, &chan_tx, stop_rx.clone()).await {
                Ok(true) => break,
                Ok(false) => backoff = Duration::from_millis(100),
                Err(e) => {
                    tracing::warn!(error = %e, "AMQP connection lost; retrying");
                }
            }
            let _ = chan_tx.send(None);
            tokio::time::sleep(backoff).await;
            backoff = (backoff * 2).min(Duration::from_secs(5));
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
    cfg: &Amqp,
    chan_tx: &watch::Sender<Option<Channel>>,
    mut stop: watch::Receiver<bool>,
) -> Result<bool, lapin::Error> {
    let conn = Connection::connect(
        &cfg.url,
        ConnectionProperties::default().with_connection_name("ferrota-worker".into()),
    )
    .await?;
    let ch = conn.create_channel().await?;
    ch.basic_qos(cfg.prefetch.max(1), BasicQosOptions::default())
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
    loop {
        let next = tokio::select! {
            d = consumer.next() => Some(d),
            // (The guard `wait_for` returns is dropped at once: it must not live across the
            // close below.)
            r = stop.wait_for(|s| *s) => { drop(r); None }
        };
        let Some(next) = next else {
            let _ = conn.close(200, "worker stopping".into()).await;
            return Ok(true);
        };
        let Some(d) = next else { break };
        let d = d?;
        let topic = topic_of(d.routing_key.as_str());
        let out = match crate::bridge::thing_of(&topic) {
            // The thing stands in for the client id: RabbitMQ checked (by asking Ferrota) that
            // the publisher is this thing.
            Some(t) => services::on_publish(&broker.services, t, t, &topic, &d.data).await,
            None => Outcome::NotMine,
        };
        if out == Outcome::Failed {
            // Not committed: back to the queue, after a pause so a failing store is not spun on.
            tokio::time::sleep(Duration::from_millis(200)).await;
            d.nack(BasicNackOptions {
                requeue: true,
                ..BasicNackOptions::default()
            })
            .await?;
        } else {
            d.ack(BasicAckOptions::default()).await?;
        }
    }
    Ok(false)
}

/// Publishes what the services send on the current channel; waits while there is none.
async fn publish_loop(
    mut rx: mpsc::Receiver<(String, Bytes, QoS)>,
    mut chan_rx: watch::Receiver<Option<Channel>>,
) {
    while let Some((topic, payload, qos)) = rx.recv().await {
        loop {
            let ch = chan_rx.borrow().clone();
            let Some(ch) = ch else {
                if chan_rx.changed().await.is_err() {
                    return;
                }
                continue;
            };
            let mut headers = FieldTable::default();
            let q = if qos == QoS::AtMostOnce { 0 } else { 1 };
            headers.insert("x-mqtt-publish-qos".into(), AMQPValue::ShortShortInt(q));
            let props = BasicProperties::default()
                .with_headers(headers)
                .with_delivery_mode(if q == 1 { 2 } else { 1 });
            match ch
                .basic_publish(
                    EXCHANGE.into(),
                    routing_key(&topic).as_str().into(),
                    BasicPublishOptions::default(),
                    &payload,
                    props,
                )
                .await
            {
                Ok(_) => break,
                Err(e) => {
                    tracing::warn!(topic, error = %e, "AMQP publish failed; waiting for a new channel");
                    if chan_rx.changed().await.is_err() {
                        return;
                    }
                }
            }
        }
    }
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
