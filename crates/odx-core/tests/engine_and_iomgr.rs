//! The token engine model and the I/O manager's pre-checks.

use std::collections::HashMap;

use odx_core::engine::*;
use odx_core::flags::{AccessMask, SupportedFeatures};
use odx_core::iomgr::*;
use odx_core::wire::StorageOffloadToken;
use odx_core::*;

#[derive(Default)]
struct MapStore {
    map: HashMap<TokenKey, TokenRecord>,
    capacity: Option<usize>,
}

impl TokenStore for MapStore {
    fn insert(&mut self, key: TokenKey, record: TokenRecord) -> Result<(), EngineError> {
        if self.capacity.is_some_and(|c| self.map.len() >= c) {
            return Err(EngineError::StoreFull {
                capacity: self.map.len(),
            });
        }
        self.map.insert(key, record);
        Ok(())
    }
    fn get(&self, key: &TokenKey) -> Option<TokenRecord> {
        self.map.get(key).copied()
    }
    fn remove(&mut self, key: &TokenKey) -> Option<TokenRecord> {
        self.map.remove(key)
    }
    fn remove_where(
        &mut self,
        source: Option<SourceId>,
        dead: &mut dyn FnMut(&TokenRecord) -> bool,
    ) -> usize {
        let before = self.map.len();
        self.map
            .retain(|_, r| !(source.is_none_or(|s| s == r.source) && dead(r)));
        before - self.map.len()
    }
    fn len(&self) -> usize {
        self.map.len()
    }
}

const SRC: SourceId = SourceId(7);

fn engine() -> TokenEngine<MapStore> {
    TokenEngine::new(
        EngineLimits {
            max_transfer: 1 << 20,
            ..EngineLimits::default()
        },
        MapStore::default(),
    )
}

#[test]
fn populate_truncates_at_the_maximum_transfer_and_resolves_back() {
    let mut e = engine();
    let p = e
        .populate(0, SRC, ByteRange::new(4096, 4 << 20), 0, [1; 32])
        .unwrap();
    assert_eq!(p.length, 1 << 20);
    assert_eq!(key_of(&p.token), Some([1; 32]));
    let w = e.resolve_write(10, &p.token, 8192, 1 << 30).unwrap();
    assert_eq!(
        w,
        WriteSource::Data {
            source: SRC,
            offset: 4096 + 8192,
            length: (1 << 20) - 8192
        }
    );
}

#[test]
fn ttl_zero_uses_the_default_and_large_ttls_are_capped() {
    let limits = EngineLimits::default();
    assert_eq!(limits.expiry(1000, 0), 1000 + limits.default_ttl_ms);
    assert_eq!(limits.expiry(1000, 5), 1005);
    assert_eq!(limits.expiry(1000, u32::MAX), 1000 + limits.max_ttl_ms);
    assert_eq!(limits.expiry(u64::MAX, 5), u64::MAX);
}

#[test]
fn an_expired_token_is_invalid_from_its_expiry_instant() {
    let mut e = engine();
    let p = e
        .populate(0, SRC, ByteRange::new(0, 4096), 100, [2; 32])
        .unwrap();
    assert!(e.resolve_write(99, &p.token, 0, 4096).is_ok());
    assert_eq!(
        e.resolve_write(100, &p.token, 0, 4096),
        Err(NtStatus::STATUS_INVALID_TOKEN)
    );
    assert_eq!(e.store().len(), 0, "an expired token is forgotten when met");
}

#[test]
fn writing_the_source_range_invalidates_only_overlapping_tokens() {
    let mut e = engine();
    let a = e
        .populate(0, SRC, ByteRange::new(0, 4096), 0, [3; 32])
        .unwrap();
    let b = e
        .populate(0, SRC, ByteRange::new(8192, 4096), 0, [4; 32])
        .unwrap();
    let c = e
        .populate(0, SourceId(8), ByteRange::new(0, 4096), 0, [5; 32])
        .unwrap();
    assert_eq!(e.source_written(SRC, ByteRange::new(4000, 100)), 1);
    assert_eq!(
        e.resolve_write(1, &a.token, 0, 4096),
        Err(NtStatus::STATUS_INVALID_TOKEN)
    );
    assert!(e.resolve_write(1, &b.token, 0, 4096).is_ok());
    assert!(
        e.resolve_write(1, &c.token, 0, 4096).is_ok(),
        "another source is untouched"
    );
    assert_eq!(
        e.source_written(SRC, ByteRange::new(4096, 4096)),
        0,
        "adjacent range"
    );
}

#[test]
fn forged_altered_and_reserved_tokens_are_invalid() {
    let mut e = engine();
    let p = e
        .populate(0, SRC, ByteRange::new(0, 4096), 0, [6; 32])
        .unwrap();
    let mut altered = p.token;
    altered.token_id[100] = 1;
    assert_eq!(
        e.resolve_write(0, &altered, 0, 512),
        Err(NtStatus::STATUS_INVALID_TOKEN)
    );
    let forged = StorageOffloadToken::vendor(SIMULATED_TOKEN_TYPE, [0xAB; 504]);
    assert_eq!(
        e.resolve_write(0, &forged, 0, 512),
        Err(NtStatus::STATUS_INVALID_TOKEN)
    );
    let mut reserved = StorageOffloadToken::zero_data();
    reserved.token_type.set(0xFFFF_0002);
    assert_eq!(
        e.resolve_write(0, &reserved, 0, 512),
        Err(NtStatus::STATUS_INVALID_TOKEN)
    );
    let other_array = StorageOffloadToken::vendor(0x1234_0000, p.token.token_id);
    assert_eq!(
        e.resolve_write(0, &other_array, 0, 512),
        Err(NtStatus::STATUS_INVALID_TOKEN)
    );
}

#[test]
fn the_zero_token_writes_zeros_up_to_the_transfer_bound() {
    let mut e = engine();
    let z = StorageOffloadToken::zero_data();
    assert_eq!(
        e.resolve_write(0, &z, 0, 4096),
        Ok(WriteSource::Zero { length: 4096 })
    );
    assert_eq!(
        e.resolve_write(0, &z, 0, 8 << 20),
        Ok(WriteSource::Zero { length: 1 << 20 })
    );
}

#[test]
fn transfer_offset_at_or_beyond_the_token_data_is_invalid_parameter() {
    let mut e = engine();
    let p = e
        .populate(0, SRC, ByteRange::new(0, 4096), 0, [7; 32])
        .unwrap();
    assert_eq!(
        e.resolve_write(0, &p.token, 4096, 512),
        Err(NtStatus::STATUS_INVALID_PARAMETER)
    );
    assert_eq!(
        e.resolve_write(0, &p.token, u64::MAX - 511, 512),
        Err(NtStatus::STATUS_INVALID_PARAMETER)
    );
    assert_eq!(
        e.resolve_write(0, &p.token, 3584, 4096).map(|w| w.length()),
        Ok(512)
    );
}

#[test]
fn a_full_store_is_device_insufficient_resources() {
    let mut e = TokenEngine::new(
        EngineLimits::default(),
        MapStore {
            capacity: Some(1),
            ..MapStore::default()
        },
    );
    e.populate(0, SRC, ByteRange::new(0, 512), 0, [1; 32])
        .unwrap();
    assert_eq!(
        e.populate(0, SRC, ByteRange::new(0, 512), 0, [2; 32])
            .map(|p| p.length),
        Err(NtStatus::STATUS_DEVICE_INSUFFICIENT_RESOURCES)
    );
    assert_eq!(
        e.populate(0, SRC, ByteRange::new(0, 0), 0, [3; 32])
            .map(|p| p.length),
        Err(NtStatus::STATUS_INVALID_PARAMETER)
    );
}

#[test]
fn expire_forgets_exactly_the_expired_tokens() {
    let mut e = engine();
    e.populate(0, SRC, ByteRange::new(0, 512), 10, [1; 32])
        .unwrap();
    e.populate(0, SRC, ByteRange::new(0, 512), 20, [2; 32])
        .unwrap();
    assert_eq!(e.expire(15), 1);
    assert_eq!(e.store().len(), 1);
}

#[test]
fn transfer_bound_is_whole_sectors_and_never_zero() {
    let l = EngineLimits {
        max_transfer: 1000,
        ..EngineLimits::default()
    };
    assert_eq!(l.transfer_bound(), 512);
    let l = EngineLimits {
        max_transfer: 0,
        ..EngineLimits::default()
    };
    assert_eq!(l.transfer_bound(), 512);
}

#[test]
fn iomgr_checks_user_mode_access_first_then_opt_in() {
    let both = SupportedFeatures::ODXFLT;
    assert_eq!(
        io_manager_precheck(
            OffloadOp::Read,
            RequestorMode::User,
            AccessMask::WRITE_DATA,
            both
        ),
        Err(NtStatus::STATUS_ACCESS_DENIED)
    );
    assert_eq!(
        io_manager_precheck(
            OffloadOp::Read,
            RequestorMode::Kernel,
            AccessMask::empty(),
            both
        ),
        Ok(())
    );
    let none = SupportedFeatures::empty();
    assert_eq!(
        io_manager_precheck(
            OffloadOp::Write,
            RequestorMode::User,
            AccessMask::READ_DATA,
            none
        ),
        Err(NtStatus::STATUS_ACCESS_DENIED),
        "access before opt-in"
    );
    assert_eq!(
        io_manager_precheck(
            OffloadOp::Write,
            RequestorMode::User,
            AccessMask::WRITE_DATA,
            none
        ),
        Err(NtStatus::STATUS_OFFLOAD_WRITE_FLT_NOT_SUPPORTED)
    );
    assert_eq!(
        io_manager_precheck(
            OffloadOp::Read,
            RequestorMode::Kernel,
            AccessMask::empty(),
            none
        ),
        Err(NtStatus::STATUS_OFFLOAD_READ_FLT_NOT_SUPPORTED)
    );
}

#[test]
fn aggregate_features_is_the_and_of_every_filter() {
    use FilterSupportedFeaturesMode::*;
    let f = |bits: u32| SupportedFeatures::from_bits_retain(bits);
    let read_only = aggregate_supported_features([f(3), f(1)], Normal);
    assert!(
        read_only.contains(SupportedFeatures::OFFLOAD_READ)
            && !read_only.contains(SupportedFeatures::OFFLOAD_WRITE)
    );
    assert_eq!(
        aggregate_supported_features([f(3), f(0)], Normal) & SupportedFeatures::ODXFLT,
        SupportedFeatures::empty()
    );
    assert_eq!(
        aggregate_supported_features([f(3), f(3)], NeverOptIn),
        SupportedFeatures::empty()
    );
    assert_eq!(
        aggregate_supported_features([], Normal),
        SupportedFeatures::all()
    );
    assert_eq!(FilterSupportedFeaturesMode::from_registry(1), NeverOptIn);
    assert_eq!(FilterSupportedFeaturesMode::from_registry(7), Normal);
}
