"""The live applications: sender, receiver and the loopback demo, composing media, runtime and net.

Here too the pieces only they use: GOP assembly from captured frames, datagram batching, stream
admission, GOP decoding and concealment, playout, and the per-stage timings they report. Offline
evaluation and analysis live in :mod:`mstvsc_stream.analysis`, which may import from here, never the
reverse.
"""
