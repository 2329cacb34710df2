import Foundation
import Testing
import ZOCUDA

/// The CUDA layer without a GPU: library discovery fails cleanly, and every kernel compiles
/// with NVIDIA's NVRTC (which needs no GPU; scripts/test.sh installs PyPI's nvidia-cuda-nvrtc
/// and names its folder in ZOTUNE_TEST_NVRTC, apart from the CUDA stand-in's NVRTC in
/// ZOTUNE_CUDA_LIBS, so a kernel that does not compile for a real GPU fails CI).
@Suite struct CUDAKernelTests {
    static let libraries: CUDALibraries = {
        guard let folder = ProcessInfo.processInfo.environment["ZOTUNE_TEST_NVRTC"] else { return .shared }
        return CUDALibraries(searchPath: CUDASearchPath(explicitFolders: [folder], pythonFolders: []))
    }()

    static func compiler(cache: String? = nil) throws -> KernelCompiler? {
        guard let nvrtc = libraries.nvrtc.table else {
            Issue.record("NVRTC not found (scripts/test.sh installs nvidia-cuda-nvrtc; or set ZOTUNE_TEST_NVRTC)")
            return nil
        }
        return try KernelCompiler(nvrtc: nvrtc, library: libraries.nvrtc.path ?? "", cacheDirectory: cache)
    }

    @Test(arguments: [80, 90])
    func everyKernelCompiles(architecture: Int) throws {
        guard let compiler = try Self.compiler() else { return }
        for source in KernelSource.all {
            let cubin = try compiler.cubin(source, architecture: architecture)
            #expect(Array(cubin.prefix(4)) == [0x7F, 0x45, 0x4C, 0x46], "\(source.name): CUBIN is an ELF image")
            for entry in source.entryPoints {
                #expect(cubin.count > 1000 && String(decoding: cubin, as: UTF8.self).contains(entry), "\(source.name) defines \(entry)")
            }
        }
    }

    @Test func compiledKernelsAreCachedBySourceAndArchitecture() throws {
        let directory = try Fixtures.temporaryDirectory()
        defer { try? FileManager.default.removeItem(atPath: directory) }
        guard let compiler = try Self.compiler(cache: directory) else { return }
        let first = try compiler.cubin(.noise, architecture: 90)
        let files = try FileManager.default.contentsOfDirectory(atPath: directory)
        #expect(files.count == 1 && files[0].hasPrefix("noise-sm_90-") && files[0].hasSuffix(".cubin"))
        #expect(try compiler.cubin(.noise, architecture: 90) == first)
        _ = try compiler.cubin(.noise, architecture: 80)
        #expect(try FileManager.default.contentsOfDirectory(atPath: directory).count == 2)
    }

    @Test func aKernelThatDoesNotCompileIsNamedWithTheLog() throws {
        guard let compiler = try Self.compiler() else { return }
        let broken = KernelSource(name: "broken", code: "extern \"C\" __global__ void k(float *x) { x[0] = undefined_name; }",
                                  entryPoints: ["k"])
        do {
            _ = try compiler.cubin(broken, architecture: 90)
            Issue.record("a broken kernel compiled")
        } catch {
            #expect(error.description.contains("broken") && error.description.contains("undefined_name"), "\(error)")
        }
    }

    /// A file that is not a library, and folders that hold none: reported, not a crash.
    @Test func missingOrBrokenLibrariesAreReported() throws {
        let directory = try Fixtures.temporaryDirectory()
        defer { try? FileManager.default.removeItem(atPath: directory) }
        try Data("not an ELF file".utf8).write(to: URL(fileURLWithPath: directory + "/libcuda.so.1"))
        let libraries = CUDALibraries(searchPath: CUDASearchPath(explicitFolders: [directory], pythonFolders: []))
        guard case .missing(let tried) = libraries.driver else {
            if libraries.driver.path == directory + "/libcuda.so.1" { Issue.record("loaded a text file as libcuda") }
            return  // a machine with a real driver found it by the loader's search
        }
        #expect(tried.first?.path == directory + "/libcuda.so.1" && !(tried.first?.error.isEmpty ?? true), "\(tried)")
    }

    @Test func devicesCommandSaysWhatItFound() throws {
        let outcome = try CLI.run(["devices"])
        #expect(outcome.status == 0, "\(outcome.stderr)")
        #expect(outcome.stdout.contains("driver: ") && outcome.stdout.contains("GPUs: ") || outcome.stdout.contains("GPU 0: "))
        #expect(outcome.stdout.contains("NVRTC: "))
    }
}
