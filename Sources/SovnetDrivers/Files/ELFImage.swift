// The few facts of a 64-bit little-endian ELF file (x86_64, aarch64) that
// putting a program into another root file system needs: its interpreter
// (PT_INTERP, the dynamic loader's path) and, for a shared library, its
// SONAME, the name the loader looks it up by, and the directories it asks
// the loader to search (DT_RUNPATH, or the older DT_RPATH). Every offset is checked
// against the file's length, so a truncated or hostile file is an error.

/// A parsed ELF file header and dynamic section.
public struct ELFImage: Sendable, Equatable {
    /// The dynamic loader a program asks for; nil for a static program or a library.
    public let interpreter: String?
    /// The processor it is for (e_machine: 62 x86-64, 183 AArch64).
    public let machine: Int
    /// A shared library's own name (DT_SONAME).
    public let soname: String?
    /// The libraries it needs (DT_NEEDED), in order.
    public let needed: [String]
    /// The directories the loader searches for them first (DT_RUNPATH, else
    /// DT_RPATH), as written: `$ORIGIN` is the program's own directory.
    public let searchPath: [String]

    /// Why a file is not an ELF file this can read.
    public struct Problem: Error, Equatable, CustomStringConvertible {
        public let description: String
    }

    public init(_ bytes: [UInt8]) throws(Problem) {
        guard bytes.count >= 64, bytes[0] == 0x7F, bytes[1] == 0x45, bytes[2] == 0x4C, bytes[3] == 0x46 else {
            throw Problem(description: "not an ELF file")
        }
        guard bytes[4] == 2, bytes[5] == 1 else { throw Problem(description: "not a 64-bit little-endian ELF file") }
        func u16(_ offset: Int) throws(Problem) -> Int {
            guard offset >= 0, offset + 2 <= bytes.count else { throw Problem(description: "truncated at \(offset)") }
            return Int(bytes[offset]) | Int(bytes[offset + 1]) << 8
        }
        func u64(_ offset: Int) throws(Problem) -> Int {
            guard offset >= 0, offset + 8 <= bytes.count else { throw Problem(description: "truncated at \(offset)") }
            var value: UInt64 = 0
            for index in 0..<8 { value |= UInt64(bytes[offset + index]) << (8 * index) }
            guard value <= UInt64(Int.max) else { throw Problem(description: "offset out of range") }
            return Int(value)
        }
        func string(_ offset: Int) throws(Problem) -> String {
            guard offset >= 0, offset < bytes.count else { throw Problem(description: "string at \(offset) outside the file") }
            guard let end = bytes[offset...].firstIndex(of: 0) else { throw Problem(description: "unterminated string") }
            return String(decoding: bytes[offset..<end], as: UTF8.self)
        }
        machine = try u16(0x12)
        let programHeaders = try u64(0x20)
        let entrySize = try u16(0x36)
        let entries = try u16(0x38)
        guard entrySize >= 56 else { throw Problem(description: "program header entries of \(entrySize) bytes") }
        var interpreter: String?
        var dynamic: (offset: Int, size: Int)?
        var loads: [(virtual: Int, offset: Int, size: Int)] = []
        for index in 0..<entries {
            let header = programHeaders + index * entrySize
            let type = try u16(header)
            let offset = try u64(header + 8)
            let virtual = try u64(header + 16)
            let size = try u64(header + 32)
            switch type {
            case 3: interpreter = try string(offset)
            case 2: dynamic = (offset, size)
            case 1: loads.append((virtual, offset, size))
            default: break
            }
        }
        self.interpreter = interpreter
        var names: [(tag: Int, value: Int)] = []
        var stringTable: Int?
        if let dynamic {
            var entry = dynamic.offset
            while entry + 16 <= dynamic.offset + dynamic.size {
                let tag = try u64(entry)
                let value = try u64(entry + 8)
                if tag == 0 { break }
                if tag == 5 { stringTable = value }
                if [1, 14, 15, 29].contains(tag) { names.append((tag, value)) }
                entry += 16
            }
        }
        // DT_STRTAB is a virtual address: find the file offset of the segment holding it.
        var table: Int?
        if let address = stringTable {
            table = loads.first { address >= $0.virtual && address < $0.virtual + $0.size }
                .map { address - $0.virtual + $0.offset }
        }
        var soname: String?
        var needed: [String] = []
        var runPath: String?
        var rPath: String?
        for (tag, value) in names {
            guard let table else { throw Problem(description: "dynamic strings outside every segment") }
            let name = try string(table + value)
            switch tag {
            case 14: soname = name
            case 29: runPath = name
            case 15: rPath = name
            default: needed.append(name)
            }
        }
        self.soname = soname
        self.needed = needed
        searchPath = (runPath ?? rPath)?.split(separator: ":").map(String.init) ?? []
    }
}
