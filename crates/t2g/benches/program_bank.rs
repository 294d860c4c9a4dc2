//! Programming a whole bank (0x3F8000 = 4,161,536 bytes of large sectors) through the model's
//! `NorFlash` view of the inactive bank, in 4 KB writes, after erasing it. Target: ≥ 500 MB/s.
//!
//! Run: `cargo bench -p ferrota-t2g --bench program_bank`

use criterion::{BatchSize, Criterion, Throughput, criterion_group, criterion_main};
use embedded_storage::nor_flash::NorFlash;
use ferrota_t2g::{BankMode, Device, geometry::HALF_LARGE_SIZE};

fn program_bank(c: &mut Criterion) {
    let mut base = Device::new();
    base.set_bank_mode(BankMode::Dual).expect("powered");
    base.inactive_bank()
        .expect("dual")
        .erase(0, HALF_LARGE_SIZE)
        .expect("erase");
    let chunk: Vec<u8> = (0..4096u32).map(|i| (i * 7) as u8).collect();

    let mut g = c.benchmark_group("program_bank");
    g.throughput(Throughput::Bytes(u64::from(HALF_LARGE_SIZE)));
    g.sample_size(20);
    g.bench_function("norflash_write_4k_chunks", |b| {
        b.iter_batched(
            || base.clone(),
            |mut dev| {
                let mut bank = dev.inactive_bank().expect("dual");
                for off in (0..HALF_LARGE_SIZE).step_by(chunk.len()) {
                    let n = chunk.len().min((HALF_LARGE_SIZE - off) as usize);
                    bank.write(off, &chunk[..n]).expect("program");
                }
                dev
            },
            BatchSize::SmallInput,
        )
    });
    g.finish();

    // A power-cut sweep clones a snapshot per attempt: that must cost microseconds.
    let mut g = c.benchmark_group("snapshot");
    g.bench_function("clone_device_with_programmed_bank", |b| {
        let mut dev = base.clone();
        let mut bank = dev.inactive_bank().expect("dual");
        for off in (0..HALF_LARGE_SIZE).step_by(chunk.len()) {
            let n = chunk.len().min((HALF_LARGE_SIZE - off) as usize);
            bank.write(off, &chunk[..n]).expect("program");
        }
        b.iter(|| dev.clone())
    });
    g.finish();
}

criterion_group!(benches, program_bank);
criterion_main!(benches);
