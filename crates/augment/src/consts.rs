//! Small constant tensors (luma weights, normalisation means and standard deviations) built once
//! per device and kind and then shared, so that a view on CUDA does not upload the same few
//! numbers from the host on every call (each upload is a host round trip; issue 30 item 7).

use std::collections::HashMap;
use std::sync::{Mutex, OnceLock};
use tch::{Device, Kind, Tensor};

/// What identifies a constant: its values (as bits, so any f64 is a key), shape, kind and device.
type Key = (Vec<u64>, Vec<i64>, Kind, Device);

/// `values` as a tensor of `shape`, `kind` on `device`: built (uploaded) the first time a key is
/// asked for, a shallow clone of that tensor afterwards. Callers only read it: the tensor is
/// shared by every later call, so an in-place op on it would change them all.
pub fn constant(values: &[f64], shape: &[i64], kind: Kind, device: Device) -> Tensor {
    static CACHE: OnceLock<Mutex<HashMap<Key, Tensor>>> = OnceLock::new();
    let key = (values.iter().map(|v| v.to_bits()).collect(), shape.to_vec(), kind, device);
    // A poisoned lock only means another thread panicked while inserting; the map is still valid.
    let mut cache = CACHE.get_or_init(Default::default).lock().unwrap_or_else(|e| e.into_inner());
    cache
        .entry(key)
        .or_insert_with(|| tch::no_grad(|| Tensor::from_slice(values).to_kind(kind).to_device(device).view(shape)))
        .shallow_clone()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_same_key_shares_one_tensor_and_other_keys_get_their_own() {
        let a = constant(&[0.25, 0.5], &[1, 2], Kind::Float, Device::Cpu);
        let b = constant(&[0.25, 0.5], &[1, 2], Kind::Float, Device::Cpu);
        // Shared storage: built once, not re-made per call.
        assert_eq!(a.data_ptr(), b.data_ptr());
        assert_eq!(Vec::<f32>::try_from(a.flatten(0, -1)).unwrap(), [0.25, 0.5]);
        let other_kind = constant(&[0.25, 0.5], &[1, 2], Kind::Double, Device::Cpu);
        assert_eq!(other_kind.kind(), Kind::Double);
        let other_shape = constant(&[0.25, 0.5], &[2, 1], Kind::Float, Device::Cpu);
        assert_eq!(other_shape.size(), [2, 1]);
        assert_ne!(constant(&[0.25, 0.75], &[1, 2], Kind::Float, Device::Cpu).data_ptr(), a.data_ptr());
    }
}
