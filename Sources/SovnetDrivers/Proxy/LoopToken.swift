/// What an epoll registration of the proxy loop belongs to, packed into the
/// 64-bit token: a kind in the top byte and an identifier below it.
enum LoopToken: Equatable {
    case signals
    case mailbox
    case listener(Int)
    case guest(Int)
    case upstream(Int)
    case tcpFlow(UInt64)
    case udpFlow(UInt64)
    case pingFlow(UInt64)
    case forward(UInt64)

    var rawValue: UInt64 {
        switch self {
        case .signals: 1 << 56
        case .mailbox: 9 << 56
        case .listener(let index): 2 << 56 | UInt64(index)
        case .guest(let port): 3 << 56 | UInt64(port)
        case .upstream(let index): 4 << 56 | UInt64(index)
        case .tcpFlow(let id): 5 << 56 | id
        case .udpFlow(let id): 6 << 56 | id
        case .pingFlow(let id): 7 << 56 | id
        case .forward(let id): 8 << 56 | id
        }
    }

    init?(rawValue: UInt64) {
        let id = rawValue & (1 << 56 - 1)
        switch rawValue >> 56 {
        case 1: self = .signals
        case 9: self = .mailbox
        case 2: self = .listener(Int(id))
        case 3: self = .guest(Int(id))
        case 4: self = .upstream(Int(id))
        case 5: self = .tcpFlow(id)
        case 6: self = .udpFlow(id)
        case 7: self = .pingFlow(id)
        case 8: self = .forward(id)
        default: return nil
        }
    }
}
