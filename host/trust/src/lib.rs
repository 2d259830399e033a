//! What may serve. A compliance team must be able to say which code
//! decided, who wrote it, who approved it, and that nothing else could have
//! run; this crate answers that before the runtime ever compiles a
//! component.
//!
//! - [`keys`]: Ed25519 signing keys in owner-only files, and the key id a
//!   public key is known by;
//! - [`statement`]: what a signature covers: the component's digest, its
//!   manifest's digest and the signer's role, so a change to either file
//!   voids every signature;
//! - [`signatures`]: `NAME.sig`, the signatures kept beside `NAME.wasm`;
//! - [`store`]: the deployment's trust configuration: the activation
//!   policy, the keys it trusts and what each may sign;
//! - [`lock`]: the lock file, the exact digests allowed to serve;
//! - [`gate`]: every check together, as the loader asks before it
//!   compiles: a version either meets the activation policy, with its
//!   signers named, or is refused with a reason that names what is missing.
//! - [`keyfile`]: the bounded, owner-only key files every key lives in
//!   (the audit trail's keys too).

pub mod gate;
pub mod keyfile;
pub mod keys;
pub mod lock;
pub mod signatures;
pub mod statement;
pub mod store;

pub use gate::{Examination, Refusal, SignatureCheck, Signer, Trust};
pub use keys::{KeyError, KeyId, PublicKey, SignerKey};
pub use lock::{LockError, LockFile, LockedUnit};
pub use signatures::{MAX_SIGNATURE_FILE_BYTES, Signature, SignatureFile, SignatureFileError};
pub use statement::{Role, UnitDigests};
pub use store::{Activation, TrustConfig, TrustError, TrustedKey};
