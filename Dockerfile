# faceswap web app on a CUDA GPU: docker build -t faceswap . && docker run --gpus all -p 7860:7860 -v faceswap-cache:/data faceswap
# The base model downloads into the /data volume on first start (set HF_TOKEN for gated models);
# trained LoRAs are written to /data/lora_weights, so both survive container restarts.
FROM pytorch/pytorch:2.5.1-cuda12.4-cudnn9-runtime

# libgl1/libglib2.0-0: OpenCV; the rest of the system libraries come with the base image.
RUN apt-get update \
    && apt-get install -y --no-install-recommends libgl1 libglib2.0-0 \
    && rm -rf /var/lib/apt/lists/*

WORKDIR /app
COPY requirements.txt .
# torch (with CUDA) is already in the base image and satisfies requirements.txt's range.
RUN pip install --no-cache-dir -r requirements.txt

RUN useradd --create-home --uid 1000 faceswap \
    && mkdir -p /data/lora_weights \
    && chown -R faceswap:faceswap /data
COPY --chown=faceswap:faceswap . .

ENV HF_HOME=/data/huggingface \
    FACESWAP_LORA_DIR=/data/lora_weights \
    FACESWAP_HOST=0.0.0.0 \
    FACESWAP_PORT=7860 \
    GRADIO_ANALYTICS_ENABLED=False \
    PYTHONUNBUFFERED=1
VOLUME ["/data"]
USER faceswap
EXPOSE 7860
CMD ["python", "app.py"]
