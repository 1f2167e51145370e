"""The browser frontend (PROTOCOL.md section 3): the tornado websocket bridge and the
viewer's JavaScript modules in static/.
"""
