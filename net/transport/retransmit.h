#pragma once
// A queue pair's retransmission timeout and retry limit (RDMA-style reliable connection).
//
// Contract: on_retransmission_timeout() is called when the QP's RTO expired with data outstanding
// and no acknowledged progress for one RTO. It counts the timeout; if the QP has already retried
// cfg.retry_limit times in a row without progress it returns give_up (the QP errors out, as an RDMA
// NIC does after retry_cnt retries; the simulator reports the flow FAILED). Otherwise it rewinds the
// sender (go-back-N: to snd_una; selective: everything unacknowledged becomes sendable again), halves
// the window and returns retransmit. on_ack_progress() resets the retry count (an ACK that
// acknowledged new bytes, as the NIC's retry counter resets on a valid ACK).
#include "net/sim/config.h"
#include "net/transport/queue_pair.h"

namespace lookahead::net {

enum class TimeoutOutcome : uint8_t { RETRANSMIT = 0, GIVE_UP = 1 };

TimeoutOutcome on_retransmission_timeout(QueuePair& q, const NetworkConfig& cfg);
inline void on_ack_progress(QueuePair& q) { q.retries = 0; }

}  // namespace lookahead::net
