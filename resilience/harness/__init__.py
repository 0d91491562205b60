"""The resilience suite's harness: real processes, real faults, bounded traffic."""
