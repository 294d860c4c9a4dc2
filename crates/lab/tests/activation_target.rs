//! The target, checked in CI: activation and rollback at least 100× faster (simulated
//! flash time) than copying the image into a fixed slot or swapping it, on the same model.
//! The table itself: `cargo bench -p ferrota-lab --bench activation`.

#[test]
fn activation_and_rollback_are_100x_faster_than_copying() {
    let c = ferrota_lab::cost::compare().unwrap();
    println!("{}", c.markdown());
    assert!(c.min_speedup() >= 100.0, "{}", c.markdown());
    // Activation writes two log records, rollback one: no bank is erased or copied.
    assert_eq!(c.activation.ops, 20);
    assert_eq!(c.rollback.ops, 10);
    // The baseline really moves the whole image.
    assert_eq!(c.copy.ops, 127 + 8128);
    assert_eq!(c.image_bytes, 4_161_536);
}
