// sovnet-fuzz: the fuzz targets of SovnetFuzz as a program.
//
// Built by `scripts/fuzz` with `--sanitize fuzzer --sanitize address` and
// `-DSOVNET_LIBFUZZER`, it is a libFuzzer binary: the target is named by the
// environment variable SOVNET_FUZZ_TARGET, and libFuzzer's own flags apply
// (`-max_total_time=`, corpus directories, `-artifact_prefix=`).
//
// Built plainly (the package's ordinary build), it runs the targets without
// libFuzzer:
//   sovnet-fuzz list                      the targets
//   sovnet-fuzz run TARGET PATH...        each file, or each file in each
//                                         directory, as one input
//   sovnet-fuzz seed DIR CAPTURE...       DIR/TARGET/seed-N for every target,
//                                         made from the captures' frames
import CPcap
import Foundation
import SovnetFuzz

#if SOVNET_LIBFUZZER
nonisolated(unsafe) private var selected = FuzzTarget.frame

@_cdecl("LLVMFuzzerInitialize")
public func initialize(_ argc: UnsafeMutablePointer<Int32>, _ argv: UnsafeMutablePointer<UnsafeMutablePointer<UnsafeMutablePointer<CChar>?>>) -> Int32 {
    let name = ProcessInfo.processInfo.environment["SOVNET_FUZZ_TARGET"] ?? ""
    guard let target = FuzzTarget(rawValue: name) else {
        FileHandle.standardError.write(Data("SOVNET_FUZZ_TARGET must be one of: \(FuzzTarget.allCases.map(\.rawValue).joined(separator: " "))\n".utf8))
        exit(2)
    }
    selected = target
    return 0
}

@_cdecl("LLVMFuzzerTestOneInput")
public func testOneInput(_ data: UnsafePointer<UInt8>?, _ size: Int) -> Int32 {
    selected.run(data.map { Array(UnsafeBufferPointer(start: $0, count: size)) } ?? [])
    return 0
}
#else
@main
struct FuzzTool {
    static func main() {
        let arguments = Array(CommandLine.arguments.dropFirst())
        do {
            switch arguments.first {
            case "list":
                for target in FuzzTarget.allCases { print(target.rawValue) }
            case "run" where arguments.count >= 3:
                try run(target(arguments[1]), paths: Array(arguments[2...]))
            case "seed" where arguments.count >= 3:
                try seed(into: arguments[1], captures: Array(arguments[2...]))
            default:
                throw Failure("usage: sovnet-fuzz list | run TARGET PATH... | seed DIR CAPTURE...")
            }
        } catch {
            FileHandle.standardError.write(Data("sovnet-fuzz: \(error)\n".utf8))
            exit(2)
        }
    }

    struct Failure: Error, CustomStringConvertible {
        let description: String
        init(_ description: String) { self.description = description }
    }

    static func target(_ name: String) throws -> FuzzTarget {
        guard let target = FuzzTarget(rawValue: name) else {
            throw Failure("no target \(name); the targets: \(FuzzTarget.allCases.map(\.rawValue).joined(separator: " "))")
        }
        return target
    }

    /// Runs every input under `paths`; prints how many ran and what they reached.
    static func run(_ target: FuzzTarget, paths: [String]) throws {
        var inputs = 0
        var reached: [String: Int] = [:]
        for path in paths {
            for file in try files(at: path) {
                guard let data = FileManager.default.contents(atPath: file) else { throw Failure("cannot read \(file)") }
                for milestone in target.run([UInt8](data)) { reached[milestone, default: 0] += 1 }
                inputs += 1
            }
        }
        let summary = reached.sorted { $0.key < $1.key }.map { "\($0.key) \($0.value)" }.joined(separator: ", ")
        print("\(target.rawValue): \(inputs) inputs, no crash; reached: \(summary.isEmpty ? "nothing" : summary)")
    }

    static func files(at path: String) throws -> [String] {
        var isDirectory: ObjCBool = false
        guard FileManager.default.fileExists(atPath: path, isDirectory: &isDirectory) else { throw Failure("\(path) does not exist") }
        guard isDirectory.boolValue else { return [path] }
        return try FileManager.default.contentsOfDirectory(atPath: path).sorted().map { path + "/" + $0 }
            .filter { !$0.hasSuffix("/README.md") }
    }

    /// Writes each target's seeds, made from the frames of `captures`.
    static func seed(into directory: String, captures: [String]) throws {
        let frames = try captures.flatMap(readFrames)
        for target in FuzzTarget.allCases {
            let folder = directory + "/" + target.rawValue
            try FileManager.default.createDirectory(atPath: folder, withIntermediateDirectories: true)
            let seeds = target.seeds(from: frames)
            for (index, seed) in seeds.enumerated() {
                try Data(seed).write(to: URL(fileURLWithPath: folder + "/seed-\(index)"))
            }
            print("\(target.rawValue): \(seeds.count) seeds in \(folder)")
        }
    }

    /// The frames of a capture file, read with libpcap.
    static func readFrames(_ path: String) throws -> [[UInt8]] {
        var error = [CChar](repeating: 0, count: Int(PCAP_ERRBUF_SIZE))
        guard let handle = pcap_open_offline(path, &error) else { 
            throw Failure("\(path): \(String(decoding: error.prefix { $0 != 0 }.map { UInt8(bitPattern: $0) }, as: UTF8.self))")
        }
        defer { pcap_close(handle) }
        var frames: [[UInt8]] = []
        var header: UnsafeMutablePointer<pcap_pkthdr>?
        var data: UnsafePointer<UInt8>?
        while pcap_next_ex(handle, &header, &data) == 1, let header, let data {
            frames.append(Array(UnsafeBufferPointer(start: data, count: Int(header.pointee.caplen))))
        }
        return frames
    }
}
#endif
