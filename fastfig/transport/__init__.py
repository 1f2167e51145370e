"""The ZeroMQ transport (PROTOCOL.md section 2): the server that feeds figures to
consumers, the Python client, the relay, the message schema and the security defaults.
"""
