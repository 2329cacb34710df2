import ZOCore

/// Where a block stage reads its parameters: a device buffer holding the block's layout, or
/// a view that materializes tensors on demand (an offloaded block kept encoded on the
/// device, decoded one fused linear at a time).
public protocol BlockWeights {
    /// `count` Float32 elements from element `start` of the block's layout, on the device.
    /// A view materialized on demand stays valid for the operations enqueued before the next
    /// request for a weight matrix.
    func floats(_ start: Int, _ count: Int) -> DeviceBuffer
}

extension DeviceBuffer: BlockWeights {}
