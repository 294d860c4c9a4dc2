//! The private RabbitMQ cluster: three nodes join one cluster, a node killed with SIGKILL comes
//! back into it, and every node takes MQTT and AMQP on its own ports.

use std::net::TcpStream;

use ferrota_infra::{RabbitCluster, RabbitConfig};

fn running_nodes(c: &RabbitCluster, via: usize) -> usize {
    let out = c
        .ctl(via, &["cluster_status", "--formatter", "json"])
        .unwrap();
    let start = out.find('{').unwrap();
    let v: serde_json::Value = serde_json::from_str(&out[start..]).unwrap();
    v["running_nodes"].as_array().map_or(0, |a| a.len())
}

#[test]
fn three_nodes_form_a_cluster_and_a_killed_node_rejoins() {
    if ferrota_infra::skip_without("RabbitMQ", RabbitCluster::available()) {
        return;
    }
    let mut c = RabbitCluster::start(&RabbitConfig {
        nodes: 3,
        tls: None,
        auth_http: vec![],
    })
    .unwrap();
    assert_eq!(running_nodes(&c, 0), 3);
    for i in 0..3 {
        TcpStream::connect(("127.0.0.1", c.mqtt_port(i))).unwrap();
        TcpStream::connect(("127.0.0.1", c.amqp_port(i))).unwrap();
    }
    c.kill(1);
    assert!(!c.is_running(1));
    assert_eq!(running_nodes(&c, 0), 2);
    c.restart(1).unwrap();
    assert_eq!(running_nodes(&c, 2), 3);
}
