"""The naive peer issue 13 compares Loupe with: one Flask route that decodes the POSTed image
and calls the same DefectModel.predict inline. Nothing stored, routed or audited; the model
loaded once per process (gunicorn sync workers, one torch thread each). Started by
bench/station/peer.py with the artifact's path in PEER_ARTIFACT."""

import io
import os

import torch
from flask import Flask, jsonify, request
from PIL import Image

from ml.engine.artifact import load_artifact

torch.set_num_threads(1)
MODEL = load_artifact(os.environ["PEER_ARTIFACT"])
app = Flask(__name__)


@app.post("/predict")
def predict():
    image = Image.open(io.BytesIO(request.files["image"].read()))
    image.load()
    output = MODEL.predict([image.convert("RGB")])[0]
    return jsonify(defect_probability=output.defect_probability, regions=len(output.regions))
