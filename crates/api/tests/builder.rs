//! The builder writes the requests the clients used to write by hand with `json!`.

use ferrota_api::{CreateOtaUpdate, FIRMWARE_FILE_TYPE, OtaFile};
use serde_json::json;

/// What `ferrota ota create` sent before the builder (a firmware file with a certificate, a
/// thing and a group, a timeout), field for field.
#[test]
fn builder_writes_the_cli_request() {
    let req = CreateOtaUpdate::new("up-1")
        .description("v1.2.0")
        .thing("board-1")
        .thing_group("lab")
        .file(
            OtaFile::firmware("/ota/bank.bin", "ab12", "MEUC")
                .certificate_name("code.crt")
                .certificate("-----BEGIN CERTIFICATE-----"),
        )
        .in_progress_timeout_minutes(30);
    let by_hand = json!({
        "otaUpdateId": "up-1",
        "description": "v1.2.0",
        "targets": ["thing/board-1", "thinggroup/lab"],
        "files": [{
            "fileName": "/ota/bank.bin",
            "fileType": FIRMWARE_FILE_TYPE,
            "fileLocation": {"sha256": "ab12"},
            "codeSigning": {"customCodeSigning": {
                "signature": {"inlineDocument": "MEUC"},
                "certificateChain": {"certificateName": "code.crt",
                                     "inlineDocument": "-----BEGIN CERTIFICATE-----"},
                "hashAlgorithm": "SHA256",
                "signatureAlgorithm": "ECDSA"
            }}
        }],
        "awsJobTimeoutConfig": {"inProgressTimeoutInMinutes": 30}
    });
    assert_eq!(serde_json::to_value(&req).unwrap(), by_hand);
    // And the server's strict reading takes it back unchanged.
    let back: CreateOtaUpdate = serde_json::from_value(by_hand).unwrap();
    assert_eq!(
        serde_json::to_value(&back).unwrap(),
        serde_json::to_value(&req).unwrap()
    );
}

/// A file without `fileType` leaves it out (AWS's default), and the certificate name starts as
/// the CLI's default.
#[test]
fn plain_file_has_no_file_type_and_the_default_certificate_name() {
    let f = OtaFile::new("settings.bin", "cd34", "MEUC");
    let v = serde_json::to_value(&f).unwrap();
    assert!(v.get("fileType").is_none(), "{v}");
    assert_eq!(
        v["codeSigning"]["customCodeSigning"]["certificateChain"],
        json!({"certificateName": ferrota_api::DEFAULT_CERTIFICATE_NAME})
    );
    assert_eq!(
        serde_json::to_value(f.file_type(Some(7))).unwrap()["fileType"],
        7
    );
}

/// Unknown fields are refused in every request type (the server's strictness lives in the
/// types).
#[test]
fn unknown_request_fields_are_refused() {
    let r: Result<CreateOtaUpdate, _> = serde_json::from_value(json!({
        "otaUpdateId": "x", "targets": [], "files": [], "rolloutRate": 3
    }));
    assert!(r.unwrap_err().to_string().contains("rolloutRate"));
}
