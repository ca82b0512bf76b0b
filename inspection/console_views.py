from django.shortcuts import render


def lines_page(request):
    return render(request, "inspection/lines.html")


def line_page(request, pk):
    return render(request, "inspection/lines.html")


def change_line(request, pk):
    return render(request, "inspection/lines.html")
