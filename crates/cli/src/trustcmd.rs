//! Signed update metadata (issue #20): `key trust-init`, `key trust-show`, `key rotate`,
//! `key revoke`, `release sign`, `release verify`.
//!
//! A trust directory holds the private keys as PKCS#8 PEM (`root-K.pem`, `release-K.pem`,
//! `timestamp-K.pem`, mode 0600) and the root documents `root-1.cbor` .. `root-N.cbor`. Which
//! keys are current is never remembered on the side: it is read from the newest root document,
//! verified from `root-1.cbor` (the device's anchor) through every later one, exactly as a
//! device walks them. A private key is found by its key id.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::time::{SystemTime, UNIX_EPOCH};

use anyhow::{Context, Result, anyhow, bail};
use ferrota_image::ota;
use ferrota_keys::{KeyType, PrivateKey};
use ferrota_manifest::build::{self, KeyFile, ManifestSpec};
use ferrota_manifest::p256::ecdsa::SigningKey;
use ferrota_manifest::{Kid, Role, TrustError, TrustedRoot};
use sha2::{Digest, Sha256};

use crate::args::{
    Expires, KeyRevokeArgs, KeyRotateArgs, ReleaseSignArgs, ReleaseVerifyArgs, TrustDirArgs,
    TrustInitArgs, TrustRole,
};
use crate::fsio::{self, Access};

/// Largest root document or manifest file read (a root is under 1 KB, a manifest with four
/// roots under 8 KB).
const DOC_LIMIT: u64 = 64 * 1024;

/// The device's trust anchor in a trust directory.
const ANCHOR: &str = "root-1.cbor";

fn now() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_secs())
}

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

fn role_names(roles: u8) -> String {
    let mut v = Vec::new();
    for (r, n) in [
        (Role::Root, "root"),
        (Role::Release, "release"),
        (Role::Timestamp, "timestamp"),
    ] {
        if roles & r as u8 != 0 {
            v.push(n);
        }
    }
    v.join("+")
}

fn role_prefix(role: TrustRole) -> (&'static str, Role) {
    match role {
        TrustRole::Root => ("root", Role::Root),
        TrustRole::Release => ("release", Role::Release),
        TrustRole::Timestamp => ("timestamp", Role::Timestamp),
    }
}

fn new_key() -> Result<(SigningKey, String)> {
    let key = PrivateKey::generate(KeyType::EcdsaP256).context("cannot generate a key")?;
    let pem = key.to_pkcs8_pem().context("cannot encode the key")?;
    let signing = key
        .into_ota_signing_key()
        .context("cannot use the new key")?;
    Ok((signing, pem.to_string()))
}

fn require_dir(dir: &Path) -> Result<()> {
    if !dir.is_dir() {
        bail!(
            "{}: no such trust directory (make one with `ferrota key trust-init --dir {}`)",
            dir.display(),
            dir.display()
        );
    }
    Ok(())
}

/// The verified root chain of a trust directory.
struct Chain {
    /// `root-1.cbor` .. `root-N.cbor`, in order.
    docs: Vec<Vec<u8>>,
    /// The root reached by walking them all.
    root: TrustedRoot,
}

fn load_chain(dir: &Path) -> Result<Chain> {
    require_dir(dir)?;
    let anchor_path = dir.join(ANCHOR);
    if !anchor_path.exists() {
        bail!(
            "{}: missing (not a trust directory? make one with `ferrota key trust-init`)",
            anchor_path.display()
        );
    }
    let anchor = fsio::read(&anchor_path, DOC_LIMIT)?;
    let mut root = TrustedRoot::from_anchor(&anchor)
        .map_err(|e| anyhow!("{}: refused as a trust anchor: {e}", anchor_path.display()))?;
    let mut docs = vec![anchor];
    for n in 2.. {
        let path = dir.join(format!("root-{n}.cbor"));
        if !path.exists() {
            break;
        }
        let doc = fsio::read(&path, DOC_LIMIT)?;
        root = ferrota_manifest::walk_roots(&root, std::iter::once(doc.as_slice()))
            .map_err(|e| anyhow!("{}: refused after root {}: {e}", path.display(), n - 1))?;
        if root.version() != n {
            bail!(
                "{}: claims root version {} instead of {n}",
                path.display(),
                root.version()
            );
        }
        docs.push(doc);
    }
    Ok(Chain { docs, root })
}

/// The private keys of a trust directory by key id, with their files.
fn load_keys(dir: &Path) -> Result<BTreeMap<Kid, (PathBuf, SigningKey)>> {
    let mut out = BTreeMap::new();
    let entries =
        std::fs::read_dir(dir).with_context(|| format!("{}: cannot list", dir.display()))?;
    for e in entries {
        let e = e.with_context(|| format!("{}: cannot list", dir.display()))?;
        let name = e.file_name().to_string_lossy().into_owned();
        let ours = ["root-", "release-", "timestamp-"]
            .iter()
            .any(|p| name.starts_with(p));
        if !ours || !name.ends_with(".pem") {
            continue;
        }
        let path = e.path();
        let key = ferrota_keys::load_ota_signing_key(&path)?;
        out.insert(build::kid(&key), (path, key));
    }
    Ok(out)
}

/// The lowest `N` for which `<prefix>-N.pem` does not exist.
fn next_index(dir: &Path, prefix: &str) -> u32 {
    (1..)
        .find(|n| !dir.join(format!("{prefix}-{n}.pem")).exists())
        .unwrap_or(u32::MAX)
}

/// `key trust-init`.
pub fn trust_init(a: &TrustInitArgs) -> Result<()> {
    if a.threshold > a.root_keys {
        bail!(
            "--threshold {} is more than --root-keys {}: no root could ever be signed",
            a.threshold,
            a.root_keys
        );
    }
    let mut names: Vec<String> = (1..=a.root_keys).map(|i| format!("root-{i}.pem")).collect();
    names.push("release-1.pem".into());
    names.push("timestamp-1.pem".into());
    names.push(ANCHOR.into());
    if a.dir.exists() && !a.dir.is_dir() {
        bail!("{}: not a directory", a.dir.display());
    }
    if !a.force {
        for n in &names {
            let p = a.dir.join(n);
            if p.exists() {
                bail!(
                    "{}: already exists (use --force to replace the whole trust directory's keys)",
                    p.display()
                );
            }
        }
    }
    if a.dir.join("root-2.cbor").exists() {
        bail!(
            "{}: holds root-2.cbor: a new root-1.cbor would not walk to it; use a new directory",
            a.dir.display()
        );
    }
    if !a.dir.exists() {
        let mut b = std::fs::DirBuilder::new();
        #[cfg(unix)]
        std::os::unix::fs::DirBuilderExt::mode(&mut b, 0o700);
        b.create(&a.dir)
            .with_context(|| format!("{}: cannot create the directory", a.dir.display()))?;
    }
    let mut keys = Vec::new();
    let mut files = Vec::new();
    let mut roots = Vec::new();
    for i in 0..a.root_keys {
        let (k, pem) = new_key()?;
        keys.push(KeyFile {
            roles: Role::Root as u8,
            key: *k.verifying_key(),
        });
        files.push((names[usize::from(i)].clone(), pem));
        roots.push(k);
    }
    for (role, name) in [
        (Role::Release, "release-1.pem"),
        (Role::Timestamp, "timestamp-1.pem"),
    ] {
        let (k, pem) = new_key()?;
        keys.push(KeyFile {
            roles: role as u8,
            key: *k.verifying_key(),
        });
        files.push((name.into(), pem));
    }
    let signers: Vec<&SigningKey> = roots.iter().collect();
    let doc = build::root_doc(1, now(), &keys, a.threshold, 0, &signers);
    // The builder's output is checked as the device will check it before anything is written.
    TrustedRoot::from_anchor(&doc).map_err(|e| anyhow!("the new root document is refused: {e}"))?;
    for (name, pem) in &files {
        fsio::write_atomic(&a.dir.join(name), pem.as_bytes(), Access::Secret, a.force)?;
    }
    fsio::write_atomic(&a.dir.join(ANCHOR), &doc, Access::Public, a.force)?;
    for (name, _) in &files {
        eprintln!(
            "wrote {} (ECDSA P-256, PKCS#8 PEM, 0600)",
            a.dir.join(name).display()
        );
    }
    println!(
        "root 1: {} root keys (threshold {}), 1 release key, 1 timestamp key",
        a.root_keys, a.threshold
    );
    println!(
        "device trust anchor: {} (build it into the firmware; keep root-*.pem offline)",
        a.dir.join(ANCHOR).display()
    );
    Ok(())
}

/// `key trust-show`.
pub fn trust_show(a: &TrustDirArgs) -> Result<()> {
    let chain = load_chain(&a.dir)?;
    let keys = load_keys(&a.dir)?;
    let r = &chain.root;
    println!(
        "root version {} (verified from {} through {} document{})",
        r.version(),
        ANCHOR,
        chain.docs.len(),
        if chain.docs.len() == 1 { "" } else { "s" }
    );
    println!("thresholds: root {}, release 1, timestamp 1", r.threshold());
    let revoked = r.revoked_boot_keys();
    let slots: Vec<String> = (0..8)
        .filter(|i| revoked & (1 << i) != 0)
        .map(|i| i.to_string())
        .collect();
    println!(
        "revoked boot-key slots: {}",
        if slots.is_empty() {
            "none".into()
        } else {
            slots.join(", ")
        }
    );
    for k in r.keys() {
        let file = keys
            .get(&k.kid)
            .and_then(|(p, _)| p.file_name())
            .map_or_else(
                || "(private key not here)".into(),
                |n| n.to_string_lossy().into_owned(),
            );
        println!("key {} {:<9} {}", hex(&k.kid), role_names(k.roles), file);
    }
    Ok(())
}

/// `key rotate`.
pub fn rotate(a: &KeyRotateArgs) -> Result<()> {
    let chain = load_chain(&a.dir)?;
    let keys = load_keys(&a.dir)?;
    let cur = &chain.root;
    let next = cur
        .version()
        .checked_add(1)
        .ok_or_else(|| anyhow!("root version {} is the last one", cur.version()))?;
    let root_path = a.dir.join(format!("root-{next}.cbor"));
    if root_path.exists() {
        bail!(
            "{}: already exists but does not walk from root {}",
            root_path.display(),
            cur.version()
        );
    }
    let revoked = cur.revoked_boot_keys() | a.revoke_boot_keys.unwrap_or(0);
    if a.role.is_none() && revoked == cur.revoked_boot_keys() {
        bail!(
            "--revoke-boot-keys {:#04x}: root {} already revokes these slots; nothing to change",
            a.revoke_boot_keys.unwrap_or(0),
            cur.version()
        );
    }
    let mut list: Vec<KeyFile> = cur
        .keys()
        .map(|k| KeyFile {
            roles: k.roles,
            key: k.key,
        })
        .collect();
    // The new key, if a role rotates: it replaces the first key of that role in the current
    // root (for root keys, the oldest one).
    let mut replaced = None;
    if let Some(r) = a.role {
        let (prefix, role) = role_prefix(r);
        let at = cur
            .keys()
            .position(|k| k.has(role))
            .ok_or_else(|| anyhow!("root {} has no {prefix} key", cur.version()))?;
        let old = cur.keys().nth(at).map(|k| k.kid).unwrap_or_default();
        let (new, pem) = new_key()?;
        list.remove(at);
        list.push(KeyFile {
            roles: role as u8,
            key: *new.verifying_key(),
        });
        replaced = Some((prefix, role, old, new, pem));
    }
    // Signed by every root key of the old and the new root whose private key is here.
    let mut signers: Vec<&SigningKey> = Vec::new();
    let mut have_old = 0u8;
    for k in cur.keys().filter(|k| k.has(Role::Root)) {
        if let Some((_, sk)) = keys.get(&k.kid) {
            signers.push(sk);
            have_old += 1;
        }
    }
    if have_old < cur.threshold() {
        bail!(
            "{}: holds {have_old} of root {}'s root keys; {} are needed to sign root {next}",
            a.dir.display(),
            cur.version(),
            cur.threshold()
        );
    }
    if let Some((_, Role::Root, _, new, _)) = &replaced {
        signers.push(new);
    }
    let doc = build::root_doc(
        next,
        now().max(cur.issued()),
        &list,
        cur.threshold(),
        revoked,
        &signers,
    );
    ferrota_manifest::walk_roots(cur, std::iter::once(doc.as_slice()))
        .map_err(|e| anyhow!("the new root {next} is refused: {e}"))?;
    let mut key_path = None;
    if let Some((prefix, _, old, new, pem)) = &replaced {
        let path = a
            .dir
            .join(format!("{prefix}-{}.pem", next_index(&a.dir, prefix)));
        fsio::write_atomic(&path, pem.as_bytes(), Access::Secret, false)?;
        eprintln!("wrote {} (ECDSA P-256, PKCS#8 PEM, 0600)", path.display());
        println!(
            "root {next}: {prefix} key {} replaced by {} ({})",
            hex(old),
            hex(&build::kid(new)),
            path.display()
        );
        key_path = Some(path);
    }
    if let Err(e) = fsio::write_atomic(&root_path, &doc, Access::Public, false) {
        if let Some(p) = key_path {
            let _ = std::fs::remove_file(p);
        }
        return Err(e);
    }
    if revoked != cur.revoked_boot_keys() {
        println!(
            "root {next}: boot-key slots revoked {:#04x} (was {:#04x}); devices blow the eFuse bits, which cannot be undone",
            revoked,
            cur.revoked_boot_keys()
        );
    }
    println!("wrote {}", root_path.display());
    Ok(())
}

/// `key revoke`: root N+1 = root N without the key `a.kid`, signed by the root keys here of
/// root N (its threshold) and of root N+1 (its threshold). The revoked key does not sign, even
/// when its private key is here (it may be the reason for the revocation). Every role keeps a
/// key and the root threshold stays reachable, or nothing is written.
pub fn revoke(a: &KeyRevokeArgs) -> Result<()> {
    let chain = load_chain(&a.dir)?;
    let keys = load_keys(&a.dir)?;
    let cur = &chain.root;
    let kid = parse_kid(&a.kid)?;
    let gone = cur.keys().find(|k| k.kid == kid).ok_or_else(|| {
        let list: Vec<String> = cur
            .keys()
            .map(|k| format!("{} ({})", hex(&k.kid), role_names(k.roles)))
            .collect();
        anyhow!(
            "--kid {}: not a key of root {}; its keys are {} (`ferrota key trust-show`)",
            a.kid,
            cur.version(),
            list.join(", ")
        )
    })?;
    let list: Vec<KeyFile> = cur
        .keys()
        .filter(|k| k.kid != kid)
        .map(|k| KeyFile {
            roles: k.roles,
            key: k.key,
        })
        .collect();
    for (role, name, how) in [
        (Role::Root, "root", "--role root"),
        (Role::Release, "release", "--role release"),
        (Role::Timestamp, "timestamp", "--role timestamp"),
    ] {
        if gone.has(role) && !list.iter().any(|k| k.roles & role as u8 != 0) {
            bail!(
                "--kid {}: the only {name} key of root {}; a root needs one per role. Replace \
                 it instead: `ferrota key rotate --dir {} {how}`",
                a.kid,
                cur.version(),
                a.dir.display()
            );
        }
    }
    let roots_left = list
        .iter()
        .filter(|k| k.roles & Role::Root as u8 != 0)
        .count();
    if usize::from(cur.threshold()) > roots_left {
        bail!(
            "--kid {}: root {} needs {} root-key signatures, and only {roots_left} root keys \
             would remain; rotate the root key instead (`ferrota key rotate --dir {} --role root`)",
            a.kid,
            cur.version(),
            cur.threshold(),
            a.dir.display()
        );
    }
    let next = cur
        .version()
        .checked_add(1)
        .ok_or_else(|| anyhow!("root version {} is the last one", cur.version()))?;
    let root_path = a.dir.join(format!("root-{next}.cbor"));
    if root_path.exists() {
        bail!(
            "{}: already exists but does not walk from root {}",
            root_path.display(),
            cur.version()
        );
    }
    let signers: Vec<&SigningKey> = cur
        .keys()
        .filter(|k| k.has(Role::Root) && k.kid != kid)
        .filter_map(|k| keys.get(&k.kid).map(|(_, sk)| sk))
        .collect();
    if signers.len() < usize::from(cur.threshold()) {
        bail!(
            "{}: holds {} of root {}'s other root keys; {} are needed to sign root {next}",
            a.dir.display(),
            signers.len(),
            cur.version(),
            cur.threshold()
        );
    }
    let doc = build::root_doc(
        next,
        now().max(cur.issued()),
        &list,
        cur.threshold(),
        cur.revoked_boot_keys(),
        &signers,
    );
    ferrota_manifest::walk_roots(cur, std::iter::once(doc.as_slice()))
        .map_err(|e| anyhow!("the new root {next} is refused: {e}"))?;
    fsio::write_atomic(&root_path, &doc, Access::Public, false)?;
    println!(
        "root {next}: key {} ({}) revoked",
        hex(&kid),
        role_names(gone.roles)
    );
    if gone.has(Role::Release) {
        println!(
            "devices that walk root {next} refuse manifests signed by it, and forget the \
             sequence floor it set"
        );
    }
    if gone.has(Role::Timestamp) {
        println!(
            "restart `ferrota serve --trust-dir` so it signs with the remaining timestamp key"
        );
    }
    println!("wrote {}", root_path.display());
    Ok(())
}

/// A key id: 16 hex digits (as `key trust-show` prints it).
fn parse_kid(s: &str) -> Result<Kid> {
    let bytes: Vec<u8> = (0..s.len())
        .step_by(2)
        .map(|i| s.get(i..i + 2).and_then(|h| u8::from_str_radix(h, 16).ok()))
        .collect::<Option<Vec<u8>>>()
        .filter(|_| s.len() == 16)
        .ok_or_else(|| {
            anyhow!("--kid {s:?}: expected 16 hex digits, a key id as `ferrota key trust-show` prints it")
        })?;
    let mut kid = [0u8; 8];
    kid.copy_from_slice(&bytes);
    Ok(kid)
}

/// `release sign`.
pub fn sign(a: &ReleaseSignArgs) -> Result<()> {
    let chain = load_chain(&a.trust)?;
    let keys = load_keys(&a.trust)?;
    let release = chain
        .root
        .keys()
        .filter(|k| k.has(Role::Release))
        .find_map(|k| keys.get(&k.kid))
        .ok_or_else(|| {
            anyhow!(
                "{}: no private key for a release key of root {}",
                a.trust.display(),
                chain.root.version()
            )
        })?;
    let image = fsio::read(&a.image, fsio::OTA_LIMIT)?;
    let spec = ManifestSpec::from_bank_image(&image)
        .map_err(|e| anyhow!("{}: cannot describe in a manifest: {e}", a.image.display()))?;
    if let Some(t) = &a.thing
        && t.is_empty()
    {
        bail!("--thing: empty thing name");
    }
    let expires = match a.expires {
        Expires::Never => 0,
        Expires::After(s) => now().saturating_add(s),
    };
    let later = &chain.docs[1..];
    if later.len() > ferrota_manifest::MAX_BUNDLE_ROOTS {
        bail!(
            "root version {} needs {} root documents in the manifest, more than the {} a device reads",
            chain.root.version(),
            later.len(),
            ferrota_manifest::MAX_BUNDLE_ROOTS
        );
    }
    if !a.force && a.output.exists() {
        bail!(
            "{}: already exists (use --force to replace it)",
            a.output.display()
        );
    }
    let bytes = build::envelope(
        &spec,
        a.sequence,
        expires,
        a.thing.as_deref(),
        &release.1,
        later,
    );
    let sig = ota::sign_file(&release.1, &image)
        .map_err(|e| anyhow!("{}: cannot sign: {e}", release.0.display()))?;
    let mut buf = [0u8; ota::MAX_P256_BASE64];
    let b64 = sig.to_base64(&mut buf);
    // The manifest's own OTA signature (its fileType-142 entry's sig-sha256-ecdsa in the job
    // document, `ota create --manifest`): the release key's ECDSA P-256 over the file, so the
    // job stays an ordinary AWS OTA job, every file signed. Decision: the release key, not a
    // code-signing key, as the manifest is the release key's statement anyway.
    let manifest_sig = ota::sign_file(&release.1, &bytes)
        .map_err(|e| anyhow!("{}: cannot sign: {e}", release.0.display()))?;
    let mut mbuf = [0u8; ota::MAX_P256_BASE64];
    let mut sig_path = a.output.clone().into_os_string();
    sig_path.push(".sig");
    let sig_path = PathBuf::from(sig_path);
    fsio::write_atomic(&a.output, &bytes, Access::Public, a.force)?;
    fsio::write_atomic(
        &sig_path,
        format!("{}\n", manifest_sig.to_base64(&mut mbuf)).as_bytes(),
        Access::Public,
        true,
    )?;
    println!("sequence {}", a.sequence);
    println!(
        "image sha256 {} ({} bytes)",
        hex(&spec.image_digest),
        spec.image_size
    );
    println!(
        "signed by release key {} (root {})",
        hex(&build::kid(&release.1)),
        chain.root.version()
    );
    println!("{}: {b64}", ota::SIGNATURE_KEY);
    eprintln!(
        "wrote {} ({} bytes, {} root documents embedded)",
        a.output.display(),
        bytes.len(),
        later.len()
    );
    eprintln!(
        "wrote {} (the manifest's OTA signature by the release key: `ota create --manifest`)",
        sig_path.display()
    );
    Ok(())
}

/// `release verify`.
pub fn verify(a: &ReleaseVerifyArgs) -> Result<()> {
    let anchor = fsio::read(&a.anchor, DOC_LIMIT)?;
    let root = TrustedRoot::from_anchor(&anchor)
        .map_err(|e| anyhow!("{}: refused as a trust anchor: {e}", a.anchor.display()))?;
    let file = fsio::read(&a.manifest, DOC_LIMIT)?;
    let image = fsio::read(&a.image, fsio::OTA_LIMIT)?;
    let m = &a.manifest;
    // The device's words and the FAILED reason sub-code it would report.
    let refused =
        |what: &str, e: TrustError| anyhow!("{}: {what}: {e} (sub {})", m.display(), e.sub());
    let bundle = ferrota_manifest::parse_bundle(&file).map_err(|e| refused("refused", e))?;
    let root = ferrota_manifest::walk_roots(&root, bundle.roots())
        .map_err(|e| refused("its root documents are refused", e))?;
    let v = ferrota_manifest::verify_envelope(&bundle, &root).map_err(|e| refused("refused", e))?;
    v.check_expiry(now()).map_err(|e| refused("refused", e))?;
    let digest: [u8; 32] = Sha256::digest(&image).into();
    if image.len() as u64 != u64::from(v.image_size()) {
        bail!(
            "{}: is {} bytes; the manifest signs {} bytes",
            a.image.display(),
            image.len(),
            v.image_size()
        );
    }
    if &digest != v.image_digest() {
        bail!(
            "{}: SHA-256 {} is not the manifest's {}",
            a.image.display(),
            hex(&digest),
            hex(v.image_digest())
        );
    }
    println!(
        "manifest verified from {} (root {} reached)",
        a.anchor.display(),
        root.version()
    );
    println!("sequence {}", v.sequence());
    println!(
        "version {}, security counter {}",
        v.version(),
        v.security_counter()
    );
    println!(
        "image sha256 {} ({} bytes): matches {}",
        hex(&digest),
        v.image_size(),
        a.image.display()
    );
    match v.expires() {
        0 => println!("expires never"),
        t => println!("expires {t} (Unix seconds)"),
    }
    if let Some(d) = v.device_id() {
        println!("for one thing only (device id {})", hex(d));
    }
    println!("signed by release key {}", hex(&v.signer()));
    Ok(())
}
