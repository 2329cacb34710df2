import Foundation
import Testing
import ZOCore
import ZOCPU

/// The device arena's accounting and the CPU backend's streams and events.
@Suite struct ArenaAndStreamTests {
    @Test func arenaAccountsExactlyAndCoalesces() throws {
        let arena = DeviceArena(budget: 4096)
        let a = try arena.allocate(100, label: "a")    // 256
        let b = try arena.allocate(1000, label: "b")   // 1024
        let c = try arena.allocate(256, label: "c")    // 256
        #expect(arena.stats.inUse == 1536)
        #expect(a.offset % DeviceArena.alignment == 0 && b.offset % DeviceArena.alignment == 0)
        #expect(Set([a.offset, b.offset, c.offset]).count == 3)
        arena.free(b)
        #expect(arena.stats.inUse == 512)
        #expect(arena.stats.highWater == 1536)
        // The hole left by b is reused; freeing everything coalesces back to one range.
        let d = try arena.allocate(1024, label: "d")
        #expect(d.offset == b.offset)
        arena.free(a); arena.free(c); arena.free(d)
        #expect(arena.stats.inUse == 0)
        let whole = try arena.allocate(4096, label: "whole")
        #expect(whole.offset == 0)
        arena.free(whole)
        arena.resetHighWater()
        #expect(arena.stats.highWater == 0)
    }

    @Test func arenaRefusesPastItsBudgetNamingTheBuffer() throws {
        let arena = DeviceArena(budget: 1024)
        _ = try arena.allocate(512, label: "slot 0")
        #expect(throws: BackendError.outOfDeviceMemory(label: "slot 1", requested: 600, inUse: 512, budget: 1024)) {
            try arena.allocate(600, label: "slot 1")
        }
        #expect(arena.stats.inUse == 512)
    }

    @Test func copiesOnStreamsAreOrderedByEvents() throws {
        let backend = try CPUBackend(budget: 1 << 20, threads: 2)
        let upload = backend.makeStream(label: "upload")
        let offload = backend.makeStream(label: "offload")
        let count = 4096
        let source = try HostBuffer(byteCount: count * 4)
        for i in 0..<count { source.floats[i] = Float(i) }
        let device = try backend.allocate(count * 4, label: "slot")
        let back = try HostBuffer(byteCount: count * 4)

        // upload -> event -> offload waits on it: the offload must see the uploaded values.
        for round in 0..<20 {
            for i in 0..<count { source.floats[i] = Float(i + round) }
            let uploaded = backend.makeEvent()
            backend.upload(source, hostOffset: 0, to: device, byteCount: count * 4, on: upload)
            backend.record(uploaded, on: upload)
            backend.wait(offload, for: uploaded)
            backend.download(device, to: back, hostOffset: 0, byteCount: count * 4, on: offload)
            let done = backend.makeEvent()
            backend.record(done, on: offload)
            try backend.synchronize(done)
            #expect((0..<count).allSatisfy { back.floats[$0] == Float($0 + round) }, "round \(round)")
        }
    }

    @Test func aFailedCopyIsReportedBySynchronize() throws {
        let backend = try CPUBackend(budget: 1 << 20, threads: 1)
        let stream = backend.makeStream(label: "upload")
        let host = try HostBuffer(byteCount: 64)
        let device = try backend.allocate(64, label: "slot")
        backend.upload(host, hostOffset: 32, to: device, byteCount: 64, on: stream)  // past the host buffer
        #expect(throws: BackendError.self) { try backend.synchronize(stream) }
    }
}

/// Host buffers in scratch files: zeroed, writable, unlinked at once; a missing directory is
/// an error naming it.
@Suite struct ScratchHostStorageTests {
    @Test func scratchFilesAreMappedAndLeaveNothingBehind() throws {
        let directory = try Fixtures.temporaryDirectory()
        defer { try? FileManager.default.removeItem(atPath: directory) }
        let buffer = try HostBuffer(byteCount: 1 << 20, in: .files(directory: directory))
        let floats = buffer.floats
        #expect((0..<(1 << 18)).allSatisfy { floats[$0] == 0 })
        for i in 0..<(1 << 18) { floats[i] = Float(i) }
        #expect(floats[12345] == 12345)
        #expect(try FileManager.default.contentsOfDirectory(atPath: directory).isEmpty)
        // The folder disappearing changes nothing: the file was unlinked and is held by the mapping.
        try FileManager.default.removeItem(atPath: directory)
        floats[7] = -1
        #expect(floats[12345] == 12345 && floats[7] == -1)
        #expect(throws: HostMemoryError.cannotOpen(path: directory + "/missing", errno: ENOENT)) {
            _ = try HostBuffer(byteCount: 64, in: .files(directory: directory + "/missing"))
        }
    }
}
