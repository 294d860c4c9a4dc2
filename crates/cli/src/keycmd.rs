//! `ferrota key ...` and `ferrota cert ...`.

use std::io::{IsTerminal, Write};

use anyhow::{Context, Result, bail};
use ferrota_keys::{KeyType, PrivateKey};

use crate::args::{CertCodeSigningArgs, KeyGenerateArgs, KeyPublicArgs, PublicFormat};
use crate::fsio::{self, Access};

/// `key generate`.
pub fn generate(a: &KeyGenerateArgs) -> Result<()> {
    if !a.force && a.output.exists() {
        bail!(
            "{}: already exists (use --force to replace it)",
            a.output.display()
        );
    }
    let kind = if a.rsa2048 {
        KeyType::Rsa2048
    } else {
        KeyType::EcdsaP256
    };
    let key = PrivateKey::generate(kind).context("cannot generate a key")?;
    let pem = key.to_pkcs8_pem().context("cannot encode the key")?;
    fsio::write_atomic(&a.output, pem.as_bytes(), Access::Secret, a.force)?;
    eprintln!(
        "wrote {} (PKCS#8 PEM) to {}",
        key.describe(),
        a.output.display()
    );
    Ok(())
}

/// `key public`.
pub fn public(a: &KeyPublicArgs) -> Result<()> {
    let key = ferrota_keys::load_public_key(&a.input)?;
    let bytes = match a.format {
        PublicFormat::Pem => key
            .to_pem()
            .context("cannot encode the public key")?
            .into_bytes(),
        PublicFormat::Sflash => key.sflash_object(),
        PublicFormat::CArray => {
            let obj = key.sflash_object();
            let comment = format!(
                "SFlash public-key object ({}), {} bytes, for 0x{:08X}; made by ferrota from {}",
                key.scheme().name(),
                obj.len(),
                ferrota_image::sflash_key::SFLASH_KEY_ADDRESS,
                a.input
                    .file_name()
                    .map_or_else(String::new, |n| n.to_string_lossy().into_owned())
            );
            ferrota_keys::c_array("ferrota_sflash_public_key", &comment, &obj).into_bytes()
        }
    };
    match &a.output {
        Some(path) => {
            fsio::write_atomic(path, &bytes, Access::Public, true)?;
            eprintln!(
                "wrote {} ({} bytes) to {}",
                key.describe(),
                bytes.len(),
                path.display()
            );
        }
        None => {
            let mut out = std::io::stdout().lock();
            if a.format == PublicFormat::Sflash && out.is_terminal() {
                bail!("the SFlash object is binary: write it with -o FILE or redirect stdout");
            }
            out.write_all(&bytes).context("cannot write to stdout")?;
        }
    }
    Ok(())
}

/// `cert code-signing`.
pub fn code_signing(a: &CertCodeSigningArgs) -> Result<()> {
    let key = ferrota_keys::load_ota_signing_key(&a.key)?;
    let pem = ferrota_keys::code_signing_certificate(&key, &a.cn, a.days)
        .with_context(|| format!("{}: cannot create a certificate", a.key.display()))?;
    fsio::write_atomic(&a.output, pem.as_bytes(), Access::Public, true)?;
    eprintln!(
        "wrote code-signing certificate CN={} (ECDSA P-256, valid {} days) to {}",
        a.cn,
        a.days,
        a.output.display()
    );
    Ok(())
}
