//! The bundle and the PSRAM file: what the provisioning block takes from a `ferrota thing
//! create` bundle, and the 16 MB file that backs the live board's RAM.

use std::fs::File;
use std::io::Read;
use std::path::Path;

use ferrota_boot::rom::LifeCycle;
use ferrota_image::BANK_SIZE;
use ferrota_keys::{KeyFile, PrivateKey};
use ferrota_sim::boot_chain::DbmConfig;
use ferrota_t2g::Device;

use super::{KEEP_ALIVE, LiveError, SERVER_IP, input};
use crate::inputs::BoardInputs;
use crate::live::{
    LOG, LOWER_BANK, PROVISION, PROVISION_MAX, PSRAM, PSRAM_SIZE, RESUME, TRUST, UPPER_BANK,
};
use crate::map::{
    LOG_SIZE, MPS2_AN500, SFLASH_SIZE, T2G_CODE, T2G_LOG, T2G_SFLASH, UPPER_SBM_OFFSET,
};
use crate::provision::Provision;

/// T2G work-flash address of the agent's resume area (`ferrota_agent::RESUME_AREA`).
const T2G_RESUME: u32 = ferrota_agent::RESUME_AREA;
/// T2G work-flash address of the trust store (`ferrota_agent::TRUST_AREA`).
const T2G_TRUST: u32 = ferrota_agent::TRUST_AREA;

/// What the provisioning block takes from a `ferrota thing create` bundle.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Credentials {
    /// The thing name.
    pub thing: String,
    /// The endpoint: the name the server's certificate is checked against.
    pub endpoint: String,
    /// The thing's certificate, DER.
    pub client_cert: Vec<u8>,
    /// The thing's P-256 private scalar.
    pub client_key: [u8; 32],
    /// The root CA, DER.
    pub ca_cert: Vec<u8>,
    /// The code-signing public key, SEC1 uncompressed.
    pub code_signing_key: [u8; 65],
}

fn read_limited(path: &Path) -> Result<Vec<u8>, LiveError> {
    let mut b = Vec::new();
    File::open(path)
        .and_then(|f| f.take(ferrota_keys::MAX_KEY_FILE + 1).read_to_end(&mut b))
        .map_err(|e| input(path, e.to_string()))?;
    if b.len() as u64 > ferrota_keys::MAX_KEY_FILE {
        return Err(input(path, "larger than any key or certificate file"));
    }
    Ok(b)
}

fn certificate_der(path: &Path) -> Result<Vec<u8>, LiveError> {
    match KeyFile::parse(&read_limited(path)?) {
        Ok(KeyFile::Certificate(c)) => Ok(c.der),
        Ok(other) => Err(input(
            path,
            format!("holds {}, not a certificate", other.describe()),
        )),
        Err(e) => Err(input(path, e.to_string())),
    }
}

impl Credentials {
    /// Reads the bundle directory `dir` (`<out>/<thing>/` of `thing create`) through its
    /// `device.toml`, which names every other file.
    pub fn load(dir: &Path) -> Result<Credentials, LiveError> {
        let toml_path = dir.join("device.toml");
        let text = String::from_utf8(read_limited(&toml_path)?)
            .map_err(|_| input(&toml_path, "not UTF-8"))?;
        let t: toml::Table = toml::from_str(&text)
            .map_err(|e| input(&toml_path, e.to_string().trim().to_owned()))?;
        let field = |k: &str| -> Result<String, LiveError> {
            match t.get(k) {
                Some(toml::Value::String(s)) if !s.is_empty() => Ok(s.clone()),
                Some(_) => Err(input(
                    &toml_path,
                    format!("`{k}` is not a non-empty string"),
                )),
                None => Err(input(
                    &toml_path,
                    format!(
                        "no `{k}`{}",
                        if k == "code_signing_cert" {
                            " (create the thing with --code-signing-cert)"
                        } else {
                            ""
                        }
                    ),
                )),
            }
        };
        let thing = field("thing_name")?;
        let endpoint = field("endpoint")?;
        let client_cert = certificate_der(&dir.join(field("client_cert")?))?;
        let ca_cert = certificate_der(&dir.join(field("root_ca")?))?;
        let key_path = dir.join(field("client_key")?);
        let client_key = match KeyFile::parse(&read_limited(&key_path)?) {
            Ok(KeyFile::Private(PrivateKey::EcdsaP256(k))) => {
                let mut s = [0u8; 32];
                s.copy_from_slice(&k.to_bytes());
                s
            }
            Ok(other) => {
                return Err(input(
                    &key_path,
                    format!("holds {}, not an ECDSA P-256 private key", other.describe()),
                ));
            }
            Err(e) => return Err(input(&key_path, e.to_string())),
        };
        let cs_path = dir.join(field("code_signing_cert")?);
        let cs = ferrota_keys::material::code_signing_key(&read_limited(&cs_path)?)
            .map_err(|e| input(&cs_path, e))?;
        let mut code_signing_key = [0u8; 65];
        code_signing_key.copy_from_slice(cs.to_sec1_point(false).as_bytes());
        Ok(Credentials {
            thing,
            endpoint,
            client_cert,
            client_key,
            ca_cert,
            code_signing_key,
        })
    }

    /// The provisioning block for these credentials: the server at QEMU's forwarding address
    /// ([`SERVER_IP`]:`port`), `seed` for the TLS generator, `hardware` as the board id.
    pub fn provision<'a>(&'a self, port: u16, seed: [u8; 32], hardware: &'a str) -> Provision<'a> {
        Provision {
            server_ip: SERVER_IP,
            server_port: port,
            keep_alive: KEEP_ALIVE,
            seed,
            thing: &self.thing,
            server_name: &self.endpoint,
            client_cert: &self.client_cert,
            client_key: &self.client_key,
            ca_cert: &self.ca_cert,
            code_signing_key: &self.code_signing_key,
            trust_anchor: &[],
            hardware,
        }
    }
}

/// A fresh seed from the operating system (the T2G's TRNG stands in its place).
pub fn fresh_seed() -> Result<[u8; 32], LiveError> {
    let mut seed = [0u8; 32];
    getrandom::fill(&mut seed).map_err(|e| LiveError::Io {
        what: "the OS random generator".into(),
        error: std::io::Error::other(e.to_string()),
    })?;
    Ok(seed)
}

/// Offset in the PSRAM file of a PSRAM address.
pub fn psram_offset(addr: u32) -> usize {
    (addr - PSRAM) as usize
}

/// The board id the DBM of `dev` enforces (its SFlash configuration), `""` for any.
pub fn hardware_of(dev: &Device) -> Result<String, LiveError> {
    let cfg = DbmConfig::read(dev).map_err(|e| LiveError::Tool {
        command: "reading the device's DBM configuration".into(),
        detail: e.to_string(),
    })?;
    Ok(cfg
        .and_then(|c| c.hardware)
        .map(|h| h.as_str().to_owned())
        .unwrap_or_default())
}

/// The 16 MB PSRAM file of the live board: both banks of `dev` whole, its SFlash, marker log,
/// resume area and trust store, the board-inputs block, and `provision` (an encoded
/// [`Provision`]) at [`PROVISION`]; 0xFF (erased) everywhere else.
pub fn psram_image(dev: &Device, provision: &[u8]) -> Result<Vec<u8>, LiveError> {
    if provision.len() > PROVISION_MAX as usize {
        return Err(LiveError::Usage(format!(
            "the provisioning block is {} bytes, more than the {PROVISION_MAX} it may take",
            provision.len()
        )));
    }
    let dev_err = |e: ferrota_t2g::Error| LiveError::Tool {
        command: "reading the device file".into(),
        detail: e.to_string(),
    };
    let mut d = dev.clone();
    d.reset();
    d.set_work_err_silent(true).map_err(dev_err)?;
    let mut img = vec![0xFF; PSRAM_SIZE as usize];
    let windows: [(u32, u32, usize); 7] = [
        (LOWER_BANK, T2G_CODE, BANK_SIZE as usize),
        (UPPER_BANK, T2G_CODE + UPPER_SBM_OFFSET, BANK_SIZE as usize),
        (MPS2_AN500.sflash, T2G_SFLASH, SFLASH_SIZE as usize),
        (LOG, T2G_LOG, LOG_SIZE as usize),
        (RESUME, T2G_RESUME, ferrota_agent::RESUME_AREA_LEN as usize),
        (TRUST, T2G_TRUST, ferrota_agent::TRUST_AREA_LEN as usize),
        (MPS2_AN500.inputs, 0, crate::inputs::SIZE),
    ];
    for (at, t2g, len) in windows {
        let o = psram_offset(at);
        if at == MPS2_AN500.inputs {
            let inputs = BoardInputs {
                lifecycle: LifeCycle::from_value(dev.lifecycle().value()),
                user1: false,
                efuse_floor: dev.rollback_counter(),
                shash: dev.efuse().shash(),
                hardware: ferrota_image::HardwareId::new(&hardware_of(dev)?),
            };
            img[o..o + len].copy_from_slice(&inputs.encode());
        } else {
            d.read(t2g, &mut img[o..o + len]).map_err(dev_err)?;
        }
    }
    let o = psram_offset(PROVISION);
    img[o..o + provision.len()].copy_from_slice(provision);
    Ok(img)
}

#[cfg(test)]
mod tests {
    use super::super::GUEST_PORT;
    use super::super::tests::write;
    use super::*;
    use crate::matrix::{Flaw, bank_image, provisioned};
    use ferrota_boot::Bank;

    /// A bundle as `thing create --code-signing-cert` writes it (the certificates are
    /// code-signing certificates: any X.509 certificate does for the parser).
    fn bundle(dir: &Path) -> (ferrota_image::p256::ecdsa::SigningKey, PrivateKey) {
        let client = PrivateKey::generate(ferrota_keys::KeyType::EcdsaP256).expect("key");
        let signer = PrivateKey::generate(ferrota_keys::KeyType::EcdsaP256).expect("key");
        let signer_key = signer.clone().into_ota_signing_key().expect("p256");
        let cert = |k: &PrivateKey, cn: &str| {
            ferrota_keys::code_signing_certificate(
                &k.clone().into_ota_signing_key().expect("p256"),
                cn,
                30,
            )
            .expect("certificate")
        };
        write(
            dir,
            "dev-1.key.pem",
            client.to_pkcs8_pem().expect("pem").as_bytes(),
        );
        write(dir, "dev-1.crt.pem", cert(&client, "dev-1").as_bytes());
        write(dir, "root-ca.pem", cert(&signer, "root").as_bytes());
        write(
            dir,
            "code-signing.crt.pem",
            cert(&signer, "signer").as_bytes(),
        );
        write(
            dir,
            "device.toml",
            b"thing_name = \"dev-1\"\nendpoint = \"localhost\"\nport = 1\nroot_ca = \"root-ca.pem\"\n\
              client_cert = \"dev-1.crt.pem\"\nclient_key = \"dev-1.key.pem\"\n\
              code_signing_cert = \"code-signing.crt.pem\"\n",
        );
        (signer_key, client)
    }

    #[test]
    fn bundle_decodes_into_a_provisioning_block() {
        let dir = tempfile::tempdir().expect("tmp");
        let (signer, client) = bundle(dir.path());
        let c = Credentials::load(dir.path()).expect("loads");
        assert_eq!(c.thing, "dev-1");
        assert_eq!(c.endpoint, "localhost");
        let PrivateKey::EcdsaP256(k) = &client else {
            panic!("p256")
        };
        assert_eq!(&c.client_key[..], &k.to_bytes()[..]);
        assert_eq!(
            &c.code_signing_key[..],
            signer.verifying_key().to_sec1_point(false).as_bytes()
        );
        assert_eq!(c.client_cert[0], 0x30, "DER");
        let block = c.provision(GUEST_PORT, [9; 32], "").encode().expect("fits");
        let p = Provision::decode(&block).expect("decodes");
        assert_eq!(p.server_ip, SERVER_IP);
        assert_eq!(p.server_port, GUEST_PORT);
        assert_eq!(p.seed, [9; 32]);
        assert_eq!(p.thing, "dev-1");
        assert_eq!(p.server_name, "localhost");
        assert_eq!(p.client_cert, &c.client_cert[..]);
        assert_eq!(p.ca_cert, &c.ca_cert[..]);
        assert!(p.trust_anchor.is_empty());
    }

    #[test]
    fn bad_bundles_are_clear_errors() {
        let dir = tempfile::tempdir().expect("tmp");
        let d = dir.path();
        let err = |d: &Path| Credentials::load(d).expect_err("refused").to_string();
        assert!(err(d).contains("device.toml"), "{}", err(d));
        bundle(d);
        write(
            d,
            "dev-1.key.pem",
            b"-----BEGIN PRIVATE KEY-----\nnot base64!\n-----END PRIVATE KEY-----\n",
        );
        let e = err(d);
        assert!(e.contains("dev-1.key.pem"), "{e}");
        bundle(d);
        // A certificate where the key should be.
        std::fs::copy(d.join("dev-1.crt.pem"), d.join("dev-1.key.pem")).expect("copy");
        let e = err(d);
        assert!(
            e.contains("dev-1.key.pem") && e.contains("not an ECDSA P-256 private key"),
            "{e}"
        );
        bundle(d);
        write(d, "root-ca.pem", b"garbage");
        assert!(err(d).contains("root-ca.pem"));
        bundle(d);
        std::fs::remove_file(d.join("dev-1.crt.pem")).expect("rm");
        assert!(err(d).contains("dev-1.crt.pem"));
        bundle(d);
        let toml = std::fs::read_to_string(d.join("device.toml")).expect("read");
        write(
            d,
            "device.toml",
            toml.replace("code_signing_cert = \"code-signing.crt.pem\"\n", "")
                .as_bytes(),
        );
        assert!(err(d).contains("--code-signing-cert"));
        write(d, "device.toml", b"thing_name = [");
        assert!(err(d).contains("device.toml"));
    }

    #[test]
    fn psram_image_puts_every_window_at_its_address() {
        let mut dev = provisioned();
        let v1 = bank_image(1, Flaw::None, false);
        ferrota_sim::boot_chain::program_bank(&mut dev, Bank::Lower, &v1).expect("programs");
        let prov = crate::provision::tests::sample();
        let block = prov.encode().expect("fits");
        let img = psram_image(&dev, &block).expect("builds");
        assert_eq!(img.len(), PSRAM_SIZE as usize);
        let at = |a: u32, n: usize| &img[psram_offset(a)..psram_offset(a) + n];
        assert_eq!(at(LOWER_BANK, v1.len()), &v1[..], "lower bank");
        assert!(
            at(UPPER_BANK, BANK_SIZE as usize)
                .iter()
                .all(|&b| b == 0xFF),
            "upper erased"
        );
        let mut sflash = vec![0u8; SFLASH_SIZE as usize];
        let mut d = dev.clone();
        d.reset();
        d.read(T2G_SFLASH, &mut sflash).expect("sflash");
        assert_eq!(at(MPS2_AN500.sflash, sflash.len()), &sflash[..]);
        for (a, n) in [
            (LOG, LOG_SIZE as usize),
            (RESUME, ferrota_agent::RESUME_AREA_LEN as usize),
            (TRUST, ferrota_agent::TRUST_AREA_LEN as usize),
        ] {
            assert!(at(a, n).iter().all(|&b| b == 0xFF), "{a:#x} erased");
        }
        let inputs: [u8; crate::inputs::SIZE] = at(MPS2_AN500.inputs, crate::inputs::SIZE)
            .try_into()
            .expect("size");
        let i = BoardInputs::decode(&inputs).expect("inputs decode");
        assert_eq!(i.shash, dev.efuse().shash());
        assert_eq!(i.efuse_floor, dev.rollback_counter());
        assert!(!i.user1);
        let p = Provision::decode(at(PROVISION, PROVISION_MAX as usize)).expect("provision");
        assert_eq!(p, prov);
        // Between the windows: erased.
        assert!(
            img[psram_offset(PROVISION) + block.len()..]
                .iter()
                .all(|&b| b == 0xFF)
        );
    }

    #[test]
    fn oversized_provisioning_is_refused() {
        let dev = provisioned();
        let e = psram_image(&dev, &vec![0; PROVISION_MAX as usize + 1]).expect_err("too big");
        assert!(e.to_string().contains("provisioning block"), "{e}");
    }
}
