//! Feeds arbitrary bytes to everything that parses untrusted image data: the bank verifier (from
//! memory and through a flash reader), the inspector, the version record, the SFlash key object
//! and the OTA signature text. None of them may panic; every refusal must name a region or a
//! bank-level offset inside the input's bounds.
#![no_main]

use ferrota_image::inspect::inspect;
use ferrota_image::layout::BANK_SIZE;
use ferrota_image::ota::OtaSignature;
use ferrota_image::p256::ecdsa::SigningKey;
use ferrota_image::scheme::BootKey;
use ferrota_image::sflash_key::parse_key_object;
use ferrota_image::verify::verify_bank;
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let key = match SigningKey::from_slice(&[0x11; 32]) {
        Ok(k) => BootKey::EcdsaP256(*k.verifying_key()),
        Err(_) => return,
    };
    // Short inputs are padded into a bank-sized image of erased or zero flash, so the fuzzer
    // reaches the header, record and signature checks of every region.
    let mut bank = vec![if data.first() == Some(&0) { 0u8 } else { 0xFF }; BANK_SIZE as usize];
    let n = data.len().min(bank.len());
    bank[..n].copy_from_slice(&data[..n]);
    // Mirror the input into the CM7 headers too.
    for base in [0x10000usize, 0x3E8000] {
        let m = data.len().min(0x100);
        bank[base..base + m].copy_from_slice(&data[..m]);
    }
    if let Err(e) = verify_bank(&bank, &key) {
        assert!(e.offset <= BANK_SIZE);
        let _ = e.to_string();
    }
    let _ = verify_bank(data, &key);
    let s = inspect(data);
    assert_eq!(s.len, data.len());
    let _ = parse_key_object(data);
    if let Ok(text) = core::str::from_utf8(data) {
        let _ = OtaSignature::from_base64(text);
    }
});
