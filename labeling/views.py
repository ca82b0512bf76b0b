from django.shortcuts import render


def data_page(request):
    return render(request, "labeling/data.html")


def label_page(request, pk):
    return render(request, "labeling/data.html")


def annotations(request, pk):
    return render(request, "labeling/data.html")


def history_page(request, pk):
    return render(request, "labeling/data.html")
