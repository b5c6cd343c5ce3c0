"""The camera side: capture frames, featurize them, publish the vectors over MQTT.

Imports only the ``[device]`` extras (OpenCV, onnxruntime, paho-mqtt); never the
cloud or web stacks.
"""
